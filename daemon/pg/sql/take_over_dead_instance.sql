-- A provably dead instance: its leases lapse after `margin` rather than the lease time, and it
-- is no longer counted as live. Returns how many tenant leases it held.
WITH shortened AS (
  UPDATE callbackd.tenant_leases
  SET lease_until = LEAST(lease_until, now() + $2::bigint * interval '1 millisecond')
  WHERE instance_id = $1
  RETURNING tenant_id
), forgotten AS (
  DELETE FROM callbackd.instances WHERE instance_id = $1
)
SELECT count(*)::int FROM shortened
