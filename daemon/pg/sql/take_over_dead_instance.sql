-- A provably dead instance: its lease (0007: the instance's, covering all its tenants) lapses
-- after `margin` rather than the lease time, and it is no longer counted as live (heartbeat_at
-- -infinity; its row stays until its tenants are taken, then the heartbeat forgets it).
-- Returns how many tenants it held shares of.
WITH shortened AS (
  UPDATE callbackd.instances
  SET lease_until = LEAST(coalesce(lease_until, '-infinity'), now() + $2::bigint * interval '1 millisecond'),
      heartbeat_at = '-infinity'
  WHERE instance_id = $1
)
SELECT count(DISTINCT tenant_id)::int FROM callbackd.tenant_leases WHERE instance_id = $1
