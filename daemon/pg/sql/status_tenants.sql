-- The status page (core/status/page.h): every tenant, or the one named by $1, with the
-- daemon's pause and the instance holding its lease (the instance's lease, migrations/0007).
-- Bounded by the number of tenants.
SELECT t.tenant_id, t.mode, t.rate_per_minute, ts.paused_reason, ts.error_code AS paused_error_code,
       l.instance_id AS lease_instance,
       floor(extract(epoch FROM i.lease_until - now()) * 1000)::bigint AS lease_left_ms
FROM callbackd.tenants t
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = t.tenant_id AND ts.paused_reason IS NOT NULL
LEFT JOIN callbackd.tenant_leases l ON l.tenant_id = t.tenant_id
LEFT JOIN callbackd.instances i ON i.instance_id = l.instance_id
WHERE $1::text IS NULL OR t.tenant_id = $1
ORDER BY t.tenant_id
