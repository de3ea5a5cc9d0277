-- `status`: per tenant, the rows its change budget holds (migrations/0008_guard_rails.sql), by
-- applied and desired notify_url, for the hosts summary (core/reconcile/held_changes.h).
SELECT w.tenant_id, s.applied_notify_url, d.notify_url, count(*) AS n
FROM callbackd.pending_work w
JOIN callbackd.desired_callbacks d ON d.mchid = w.mchid
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = w.mchid
WHERE w.held_at IS NOT NULL
GROUP BY w.tenant_id, s.applied_notify_url, d.notify_url
