-- The status page: retrying and failed rows grouped by tenant, state and error code, largest
-- group first, each with its first $2 sub-merchant ids (a JSON array: an mchid may hold any
-- character). At most $3 groups.
SELECT tenant_id, state, last_error_code, count(*) AS n,
       to_json((array_agg(mchid ORDER BY mchid))[1:$2::int])::text AS sample_mchids
FROM callbackd.sync_status
WHERE state IN ('retrying', 'failed') AND last_error_code IS NOT NULL
  AND ($1::text IS NULL OR tenant_id = $1)
GROUP BY tenant_id, state, last_error_code
ORDER BY n DESC, tenant_id, state, last_error_code
LIMIT $3
