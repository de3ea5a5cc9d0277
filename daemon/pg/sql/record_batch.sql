-- The whole batch in one statement ($1 attempts, $2 tenant events, both JSON arrays; $3 the
-- instance). Data-modifying CTEs share one snapshot and one transaction, so either every audit
-- row and state of the batch is written or none is.
--  - audit: every attempt, fenced or not (the attempt happened). ON CONFLICT on claim_token:
--    repeating a batch whose commit was in doubt inserts nothing twice.
--  - last_per_row: should one sub-merchant appear twice, its LAST record decides its state and
--    queue entry (two rows in one upsert would fail the whole batch); both are audited.
--  - fenced: the entries that still carry the record's claim_token, locked, so a concurrent
--    desired change (whose trigger clears the claim) either happened before (the record is
--    fenced out) or waits until this commits (and then re-queues the new revision).
--  - state: `pending` decisions (rate_limited, tenant_error) leave sub_merchant_state alone;
--    never written over a state about a newer revision.
--  - in_sync rows get their first drift check (next_read_at, migrations/0011) and any drift
--    check in flight is fenced out (read_token cleared); a record with a read (adoption) keeps
--    the live value it read and when.
--  - settled / kept: the entry is deleted only when the decision says so AND it still holds the
--    claimed revision; otherwise it is due again after the decision's delay, claim cleared.
WITH batch AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS b(
    seq integer, tenant_id text, mchid text, revision bigint, claim_token bigint, notify_url text,
    switch boolean, outcome text, http_status integer, error_code text, error_message text,
    request_id text, latency_ms integer, attempt integer, update_time text, update_time_ms bigint,
    state text, remove boolean, delay_ms bigint, attempts integer, live_notify_url text,
    next_read_ms bigint)
), audit AS (
  INSERT INTO callbackd.audit_log (tenant_id, mchid, notify_url, switch, http_status, error_code,
    error_message, request_id, outcome, latency_ms, attempt, instance, desired_revision,
    update_time, claim_token)
  SELECT tenant_id, mchid, notify_url, switch, http_status, NULLIF(error_code, ''),
         NULLIF(error_message, ''), request_id, outcome, latency_ms, attempt, $3, revision,
         update_time, NULLIF(claim_token, 0)
  FROM batch ORDER BY seq
  ON CONFLICT (claim_token) WHERE claim_token IS NOT NULL DO NOTHING
  RETURNING 1
), events AS (
  INSERT INTO callbackd.audit_log (tenant_id, mchid, outcome, error_code, error_message, instance)
  SELECT tenant_id, NULL, outcome, NULLIF(error_code, ''), NULLIF(error_message, ''), $3
  FROM jsonb_to_recordset($2::jsonb) AS e(seq integer, tenant_id text, outcome text,
                                           error_code text, error_message text)
  ORDER BY seq
  RETURNING 1
), last_per_row AS (
  SELECT DISTINCT ON (mchid) * FROM batch ORDER BY mchid, seq DESC
), fenced AS (
  SELECT l.* FROM last_per_row l
  JOIN callbackd.pending_work w ON w.mchid = l.mchid AND w.claim_token = l.claim_token
  FOR UPDATE OF w
), state AS (
  INSERT INTO callbackd.sub_merchant_state AS s (mchid, tenant_id, revision, state,
    applied_notify_url, applied_switch, applied_revision, update_time, update_time_parsed,
    attempts, last_http_status, last_error_code, last_error_message, next_attempt_at, changed_at,
    live_notify_url, live_read_at, next_read_at, read_token)
  SELECT mchid, tenant_id, revision, state,
         CASE WHEN state = 'in_sync' THEN notify_url END,
         CASE WHEN state = 'in_sync' THEN switch END,
         CASE WHEN state = 'in_sync' THEN revision END,
         CASE WHEN state = 'in_sync' THEN update_time END,
         CASE WHEN state = 'in_sync' THEN 'epoch'::timestamptz + update_time_ms * interval '1 millisecond' END,
         attempts, http_status,
         CASE WHEN state <> 'in_sync' THEN NULLIF(error_code, '') END,
         CASE WHEN state <> 'in_sync' THEN NULLIF(error_message, '') END,
         CASE WHEN state = 'retrying' THEN now() + delay_ms * interval '1 millisecond' END,
         now(),
         live_notify_url,
         CASE WHEN live_notify_url IS NOT NULL THEN now() END,
         CASE WHEN state = 'in_sync' THEN now() + coalesce(next_read_ms, 0) * interval '1 millisecond' END,
         NULL
  FROM fenced WHERE state <> 'pending'
  ON CONFLICT (mchid) DO UPDATE SET
    tenant_id = EXCLUDED.tenant_id,
    revision = EXCLUDED.revision,
    state = EXCLUDED.state,
    applied_notify_url = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.applied_notify_url ELSE s.applied_notify_url END,
    applied_switch = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.applied_switch ELSE s.applied_switch END,
    applied_revision = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.applied_revision ELSE s.applied_revision END,
    update_time = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.update_time ELSE s.update_time END,
    update_time_parsed = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.update_time_parsed ELSE s.update_time_parsed END,
    attempts = EXCLUDED.attempts,
    last_http_status = EXCLUDED.last_http_status,
    last_error_code = EXCLUDED.last_error_code,
    last_error_message = EXCLUDED.last_error_message,
    next_attempt_at = EXCLUDED.next_attempt_at,
    changed_at = now(),
    live_notify_url = coalesce(EXCLUDED.live_notify_url, s.live_notify_url),
    live_read_at = coalesce(EXCLUDED.live_read_at, s.live_read_at),
    next_read_at = EXCLUDED.next_read_at,
    read_token = NULL
  WHERE s.revision <= EXCLUDED.revision
  RETURNING 1
), settled AS (
  DELETE FROM callbackd.pending_work w USING fenced f
  WHERE w.mchid = f.mchid AND w.claim_token = f.claim_token AND f.remove AND w.revision = f.revision
  RETURNING 1
), kept AS (
  UPDATE callbackd.pending_work w
  SET due_at = now() + f.delay_ms * interval '1 millisecond',
      claimed_by = NULL, claim_token = NULL, lease_until = NULL
  FROM fenced f
  WHERE w.mchid = f.mchid AND w.claim_token = f.claim_token AND NOT (f.remove AND w.revision = f.revision)
  RETURNING 1
)
SELECT (SELECT count(*) FROM audit) AS audited, (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM state) AS states, (SELECT count(*) FROM settled) AS settled,
       (SELECT count(*) FROM kept) AS kept
