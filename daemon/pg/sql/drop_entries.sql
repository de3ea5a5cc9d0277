DELETE FROM callbackd.pending_work w
USING jsonb_to_recordset($1::jsonb) AS i(mchid text, claim_token bigint, revision bigint)
WHERE w.mchid = i.mchid AND w.claim_token = i.claim_token AND w.revision = i.revision
