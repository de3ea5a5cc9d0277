-- The rows `plan --refresh` reads back (migrations/0011): every desired row with a value callbackd
-- applied (or adopted), of one tenant ($1) or of all (NULL), with what it applied to compare the
-- live value with. Read in the inspector's one read-only snapshot.
SELECT s.tenant_id, s.mchid, s.applied_notify_url
FROM callbackd.sub_merchant_state s
JOIN callbackd.desired_callbacks d ON d.mchid = s.mchid
WHERE s.applied_notify_url IS NOT NULL AND ($1::text IS NULL OR s.tenant_id = $1::text)
ORDER BY s.tenant_id, s.mchid
