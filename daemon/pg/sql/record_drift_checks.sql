-- What drift checks found, in one statement ($1 a JSON array of checks, $2 the instance),
-- migrations/0011. Data-modifying CTEs: the state changes, the audit rows and the repairs commit
-- together or not at all.
--  - fenced: the rows that still carry the check's read_token, are in sync with the applied
--    notify_url the live value was compared with, and have no queued change; locked. Anything
--    else changed meanwhile (a POST recorded, a newer check claimed it) and the check is void.
--  - state: every fenced row gets its next check and its read token cleared; an answered read
--    stores the live value and its time; drift makes the row `drifted` with the reason.
--  - audit: one `drift_detected` row per drifted row, the live value in notify_url.
--  - repair: under drift_policy 'repair', a queue entry (resync: sent although the values did
--    not change) that re-sends the desired value through the tenant's set pacer; the NOTIFY
--    wakes the instance that holds the tenant. 'report' queues nothing: the row stays drifted
--    until its desired row changes.
WITH batch AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS b(
    seq integer, mchid text, tenant_id text, read_token bigint, applied_notify_url text,
    answered boolean, live_notify_url text, drifted boolean, http_status integer, request_id text,
    next_read_ms bigint, revision bigint)
), fenced AS (
  SELECT b.*, t.drift_policy FROM batch b
  JOIN callbackd.sub_merchant_state s
    ON s.mchid = b.mchid AND s.read_token = b.read_token AND s.state = 'in_sync'
   AND s.applied_notify_url IS NOT DISTINCT FROM b.applied_notify_url
  LEFT JOIN callbackd.tenants t ON t.tenant_id = s.tenant_id
  WHERE NOT EXISTS (SELECT 1 FROM callbackd.pending_work w WHERE w.mchid = b.mchid)
  FOR UPDATE OF s
), state AS (
  UPDATE callbackd.sub_merchant_state s
  SET read_token = NULL,
      next_read_at = now() + f.next_read_ms * interval '1 millisecond',
      live_notify_url = CASE WHEN f.answered THEN f.live_notify_url ELSE s.live_notify_url END,
      live_read_at = CASE WHEN f.answered THEN now() ELSE s.live_read_at END,
      state = CASE WHEN f.drifted THEN 'drifted' ELSE s.state END,
      last_http_status = CASE WHEN f.drifted THEN f.http_status ELSE s.last_http_status END,
      last_error_code = CASE WHEN f.drifted THEN 'DRIFT_DETECTED' ELSE s.last_error_code END,
      last_error_message = CASE WHEN f.drifted
                                THEN format('WeChat Pay holds notify_url %s, not the applied %s',
                                            coalesce(quote_literal(nullif(f.live_notify_url, '')), 'none'),
                                            quote_literal(f.applied_notify_url))
                                ELSE s.last_error_message END,
      changed_at = CASE WHEN f.drifted THEN now() ELSE s.changed_at END
  FROM fenced f
  WHERE s.mchid = f.mchid
  RETURNING 1
), audit AS (
  INSERT INTO callbackd.audit_log (tenant_id, mchid, notify_url, http_status, error_message, request_id,
                                   outcome, instance, desired_revision)
  SELECT tenant_id, mchid, live_notify_url, http_status,
         format('applied notify_url was %s', quote_literal(applied_notify_url)), request_id,
         'drift_detected', $2, revision
  FROM fenced WHERE drifted
  ORDER BY seq
  RETURNING 1
), repair AS (
  INSERT INTO callbackd.pending_work AS w (mchid, tenant_id, revision, due_at, resync)
  SELECT f.mchid, d.tenant_id, d.revision, now(), true
  FROM fenced f JOIN callbackd.desired_callbacks d ON d.mchid = f.mchid
  WHERE f.drifted AND f.drift_policy = 'repair'
  ON CONFLICT (mchid) DO NOTHING
  RETURNING w.tenant_id
), woken AS (
  SELECT pg_notify('callbackd_desired', tenant_id) FROM (SELECT DISTINCT tenant_id FROM repair) r
)
SELECT (SELECT count(*) FROM state) AS checked, (SELECT count(*) FROM audit) AS drifted,
       (SELECT count(*) FROM repair) AS repairs, (SELECT count(*) FROM woken) AS woken
