-- A free tenant has no lease or a lapsed one. ON CONFLICT ... WHERE lapsed makes two
-- instances racing for one tenant safe: the loser's upsert matches nothing.
INSERT INTO callbackd.tenant_leases AS l (tenant_id, instance_id, lease_until)
SELECT t.tenant_id, $1, now() + $2::bigint * interval '1 millisecond'
FROM callbackd.tenants t
LEFT JOIN callbackd.tenant_leases h ON h.tenant_id = t.tenant_id
WHERE h.tenant_id IS NULL OR h.lease_until < now()
ORDER BY t.tenant_id
LIMIT $3
ON CONFLICT (tenant_id) DO UPDATE
  SET instance_id = EXCLUDED.instance_id, lease_until = EXCLUDED.lease_until,
      fencing_token = nextval('callbackd.tenant_lease_seq'), acquired_at = now()
  WHERE l.lease_until < now()
RETURNING tenant_id, fencing_token
