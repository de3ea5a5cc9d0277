SELECT count(*) FROM callbackd.pending_work w
JOIN callbackd.tenants t ON t.tenant_id = w.tenant_id
-- Held entries (0008) wait for a person, like failed rows: they do not keep a batch run open.
WHERE t.mode = 'apply' AND w.held_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM callbackd.tenant_state ts
                  WHERE ts.tenant_id = w.tenant_id AND ts.paused_reason IS NOT NULL)
