SELECT tenant_id, COALESCE(error_code, '') AS error_code, paused_reason,
       CASE WHEN next_probe_at IS NULL THEN 0
            ELSE GREATEST(0, ceil(extract(epoch FROM next_probe_at - now()) * 1000))::bigint END AS probe_in_ms
FROM callbackd.tenant_state
WHERE paused_reason IS NOT NULL
ORDER BY tenant_id
