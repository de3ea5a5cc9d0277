-- Per tenant: queued entries, the age of the oldest change among them (resync entries are
-- not changes, and held entries wait for a person, not for the daemon: they have their own
-- count), and how many the change budget holds (0008). Read by `status` (inspect.cpp) and by the
-- daemon's metrics (queue_ages()).
SELECT w.tenant_id, count(*) AS queued,
       count(*) FILTER (WHERE w.held_at IS NOT NULL) AS held,
       floor(extract(epoch FROM now() - min(d.updated_at) FILTER (WHERE NOT w.resync AND w.held_at IS NULL)) * 1000)::bigint AS oldest_ms
FROM callbackd.pending_work w
JOIN callbackd.desired_callbacks d ON d.mchid = w.mchid
GROUP BY w.tenant_id
