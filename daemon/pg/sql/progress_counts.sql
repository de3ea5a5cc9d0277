-- The progress table (`status --watch` every refresh, `run` at start and at exit), in ONE
-- statement: per tenant its mode, a pause by the daemon, rate_per_minute, its rows per state
-- of callbackd.sync_status (the counts kept by migrations/0014, not a scan of every row), and
-- how many requests were sent for it in the last minute (an index range on audit_log
-- (tenant_id, created_at)). One row per tenant and state: bounded by the tenants, whatever the
-- number of rows.
WITH counts AS (
  SELECT tenant_id, state, n
  FROM callbackd.row_state_counts()
)
SELECT t.tenant_id, t.mode, t.rate_per_minute, ts.paused_reason IS NOT NULL AS paused_by_error,
       ts.error_code AS pause_error_code, c.state, c.n, sent.n AS sent_last_minute
FROM callbackd.tenants t
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = t.tenant_id
LEFT JOIN counts c ON c.tenant_id = t.tenant_id
CROSS JOIN LATERAL (
  SELECT count(*) AS n
  FROM callbackd.audit_log a
  WHERE a.tenant_id = t.tenant_id AND a.created_at > now() - interval '1 minute' AND a.latency_ms IS NOT NULL
) sent
ORDER BY t.tenant_id, c.state
