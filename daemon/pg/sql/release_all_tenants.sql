-- A clean stop of instance $1: every share it holds is free at once, and it is no longer
-- counted live, so the instances left share everything between them from their next
-- heartbeat on (a stopped instance still counted live would keep a fair share of the shares
-- free for the lease time).
WITH retired AS (
  UPDATE callbackd.instances SET heartbeat_at = '-infinity', lease_until = now() WHERE instance_id = $1
)
DELETE FROM callbackd.tenant_leases WHERE instance_id = $1
