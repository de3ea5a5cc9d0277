UPDATE callbackd.tenant_state
SET paused_reason = NULL, paused_at = NULL, next_probe_at = NULL, error_code = NULL, changed_at = now()
WHERE tenant_id = $1 AND paused_reason IS NOT NULL
