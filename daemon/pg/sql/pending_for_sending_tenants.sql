SELECT count(*) FROM callbackd.pending_work w
JOIN callbackd.tenants t ON t.tenant_id = w.tenant_id
WHERE t.mode = 'apply'
  AND NOT EXISTS (SELECT 1 FROM callbackd.tenant_state ts
                  WHERE ts.tenant_id = w.tenant_id AND ts.paused_reason IS NOT NULL)
