UPDATE callbackd.tenant_leases SET lease_until = now() + $2::bigint * interval '1 millisecond'
WHERE instance_id = $1
RETURNING tenant_id, fencing_token
