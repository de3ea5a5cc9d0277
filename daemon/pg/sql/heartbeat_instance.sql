INSERT INTO callbackd.instances (instance_id, boot_id, pid_namespace, pid)
VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), NULLIF($4::integer, 0))
ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()
