-- Other instances in our kernel boot and PID namespace whose leases may not have lapsed yet
-- (heartbeat younger than the lease): the candidates for a takeover (0005).
SELECT instance_id, pid FROM callbackd.instances
WHERE instance_id <> $1 AND boot_id = $2 AND pid_namespace = $3 AND pid IS NOT NULL
  AND heartbeat_at > now() - $4::bigint * interval '1 millisecond'
ORDER BY instance_id
