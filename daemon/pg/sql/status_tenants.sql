-- The status page (core/status/page.h): every tenant, or the one named by $1, with the
-- daemon's pause and the instances holding shares of its rate (0013; each covered by its
-- instance's lease, 0007) as a JSON array by instance. Bounded by the number of tenants and
-- their shares (at most 8 each).
SELECT t.tenant_id, t.mode, t.rate_per_minute, ts.paused_reason, ts.error_code AS paused_error_code,
       callbackd.rate_shares(t.rate_per_minute) AS shares,
       (SELECT json_agg(json_build_object('instance', h.instance_id, 'shares', h.shares, 'rate', h.rate,
                                          'left_ms', h.left_ms) ORDER BY h.instance_id)
        FROM (SELECT l.instance_id, count(*) AS shares,
                     sum(callbackd.share_rate(t.rate_per_minute, l.share)) AS rate,
                     floor(extract(epoch FROM max(i.lease_until) - now()) * 1000)::bigint AS left_ms
              FROM callbackd.tenant_leases l
              LEFT JOIN callbackd.instances i ON i.instance_id = l.instance_id
              WHERE l.tenant_id = t.tenant_id AND l.share < callbackd.rate_shares(t.rate_per_minute)
              GROUP BY l.instance_id) h)::text AS holders
FROM callbackd.tenants t
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = t.tenant_id AND ts.paused_reason IS NOT NULL
WHERE $1::text IS NULL OR t.tenant_id = $1
ORDER BY t.tenant_id
