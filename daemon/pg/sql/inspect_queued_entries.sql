-- `plan`: one tenant's queued entries, with the same columns, by the same names, as claim_due.sql
-- (pg/queue_rows.h reads both), without claiming; plus when each is due and who holds it now,
-- and whether the change budget holds it (0008; due_in_ms NULL then).
SELECT w.mchid, w.tenant_id, w.resync, d.notify_url, d.switch, d.revision AS desired_revision,
       s.state, s.revision AS state_revision, s.applied_notify_url, s.applied_switch,
       s.applied_revision, s.attempts, s.last_error_message,
       to_jsonb(t.allowed_notify_hosts)::text AS allowed_notify_hosts, w.held_reason,
       w.held_at IS NOT NULL AS held,
       CASE WHEN w.held_at IS NULL THEN GREATEST(0, ceil(extract(epoch FROM w.due_at - now()) * 1000))::bigint END AS due_in_ms,
       CASE WHEN w.claim_token IS NOT NULL AND w.lease_until >= now() THEN w.claimed_by END AS claimed_by
FROM callbackd.pending_work w
JOIN callbackd.desired_callbacks d ON d.mchid = w.mchid
JOIN callbackd.tenants t ON t.tenant_id = w.tenant_id
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = w.mchid
WHERE w.tenant_id = $1
ORDER BY w.due_at, w.mchid
