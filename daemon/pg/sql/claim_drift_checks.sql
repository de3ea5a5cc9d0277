-- Due drift checks for several tenants at once ($1: a JSON array of {ord, tenant_id,
-- claim_limit}; $2 the lease in ms), migrations/0011. Per tenant, a LATERAL reads its range of
-- sub_merchant_state_read_due (in_sync rows, next_read_at order) up to its LIMIT, FOR UPDATE
-- SKIP LOCKED: indexed and bounded however many rows are in sync. A row with a queued change is
-- not checked (it is about to be sent; a value read while its POST is in flight is no drift).
-- Each claimed row gets its own read_token (claim_token_seq, so tokens never repeat across
-- instances) and next_read_at moves to the end of the lease: a reader that dies leaves the row
-- due again by itself, and an instance whose lease lapsed is fenced out by the new token.
WITH req AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(ord integer, tenant_id text, claim_limit integer)
), due AS (
  SELECT p.mchid FROM req
  CROSS JOIN LATERAL (
    SELECT s.mchid FROM callbackd.sub_merchant_state s
    WHERE s.tenant_id = req.tenant_id AND s.state = 'in_sync' AND s.next_read_at <= now()
      AND NOT EXISTS (SELECT 1 FROM callbackd.pending_work w WHERE w.mchid = s.mchid)
    ORDER BY s.next_read_at
    LIMIT req.claim_limit
    FOR UPDATE SKIP LOCKED
  ) p
)
UPDATE callbackd.sub_merchant_state s
SET read_token = nextval('callbackd.claim_token_seq'),
    next_read_at = now() + $2::bigint * interval '1 millisecond'
FROM due
WHERE s.mchid = due.mchid
RETURNING s.mchid, s.tenant_id, s.read_token, s.applied_notify_url, s.revision
