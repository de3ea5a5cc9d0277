-- Per tenant: queued entries and the age of the oldest change among them (resync entries are
-- not changes). Read by `status` (inspect.cpp) and by the daemon's metrics (queue_ages()).
SELECT w.tenant_id, count(*) AS queued,
       floor(extract(epoch FROM now() - min(d.updated_at) FILTER (WHERE NOT w.resync)) * 1000)::bigint AS oldest_ms
FROM callbackd.pending_work w
JOIN callbackd.desired_callbacks d ON d.mchid = w.mchid
GROUP BY w.tenant_id
