-- The sub-merchant page: one row of callbackd.sync_status (desired and applied values, by the
-- primary keys of desired_callbacks and sub_merchant_state) and whether it is queued. The
-- mchid is the one searched for, at most status::kMaxIdLength bytes. The live value is the last
-- one read back from WeChat Pay (adoption, drift check; migrations/0011), and when.
SELECT v.mchid, v.tenant_id, v.state,
       callbackd.status_excerpt(v.desired_notify_url) AS desired_notify_url, v.desired_switch,
       to_char(v.desired_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"') AS desired_updated_at,
       callbackd.status_excerpt(v.applied_notify_url) AS applied_notify_url, v.applied_switch, v.update_time,
       v.attempts, v.last_http_status,
       v.last_error_code, v.last_error_message,
       to_char(v.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"') AS next_attempt_at,
       v.tenant_paused_reason, (w.mchid IS NOT NULL) AS queued,
       callbackd.status_excerpt(v.live_notify_url) AS live_notify_url,
       to_char(v.live_read_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"') AS live_read_at
FROM callbackd.sync_status v
LEFT JOIN callbackd.pending_work w ON w.mchid = v.mchid
WHERE v.mchid = $1
