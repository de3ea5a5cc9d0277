-- A tenant deleted meanwhile is not resurrected (INSERT ... SELECT FROM tenants). paused_at
-- keeps the start of the pause across the failed probes that re-pause it.
INSERT INTO callbackd.tenant_state AS ts (tenant_id, paused_reason, paused_at, next_probe_at, error_code, changed_at)
SELECT tenant_id, COALESCE(NULLIF($3, ''), NULLIF($2, ''), 'tenant error'), now(),
       now() + $4::bigint * interval '1 millisecond', NULLIF($2, ''), now()
FROM callbackd.tenants WHERE tenant_id = $1
ON CONFLICT (tenant_id) DO UPDATE SET
  paused_reason = EXCLUDED.paused_reason,
  paused_at = CASE WHEN ts.paused_reason IS NULL THEN EXCLUDED.paused_at ELSE ts.paused_at END,
  next_probe_at = EXCLUDED.next_probe_at,
  error_code = EXCLUDED.error_code,
  changed_at = now()
