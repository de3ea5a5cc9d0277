-- `plan`: one tenant's queued entries, with the same columns, by the same names, as claim_due.sql
-- (pg/queue_rows.h reads both), without claiming; plus when each is due and who holds it now.
SELECT w.mchid, w.tenant_id, w.resync, d.notify_url, d.switch, d.revision AS desired_revision,
       s.state, s.revision AS state_revision, s.applied_notify_url, s.applied_switch,
       s.applied_revision, s.attempts,
       GREATEST(0, ceil(extract(epoch FROM w.due_at - now()) * 1000))::bigint AS due_in_ms,
       CASE WHEN w.claim_token IS NOT NULL AND w.lease_until >= now() THEN w.claimed_by END AS claimed_by
FROM callbackd.pending_work w
JOIN callbackd.desired_callbacks d ON d.mchid = w.mchid
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = w.mchid
WHERE w.tenant_id = $1
ORDER BY w.due_at, w.mchid
