SELECT ceil(extract(epoch FROM now() - created_at) * 1000)::bigint
FROM callbackd.audit_log
WHERE tenant_id = $1 AND created_at > now() - interval '61 seconds' AND latency_ms IS NOT NULL
ORDER BY created_at
