-- Rows parked as failed or invalid at their current revision are not re-queued: they wait for
-- their desired row to change (reconcile/diff.h), a resync must not turn them into a re-send
-- loop. Rows already queued keep their entry (they are sent anyway).
INSERT INTO callbackd.pending_work (mchid, tenant_id, revision, due_at, resync)
SELECT d.mchid, d.tenant_id, d.revision, now(), true
FROM callbackd.desired_callbacks d
JOIN callbackd.tenants t ON t.tenant_id = d.tenant_id
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = d.tenant_id
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = d.mchid
WHERE t.mode = 'apply' AND ts.paused_reason IS NULL
  AND NOT (s.state IN ('failed', 'invalid') AND s.revision >= d.revision)
ON CONFLICT (mchid) DO NOTHING
