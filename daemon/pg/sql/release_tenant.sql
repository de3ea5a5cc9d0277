DELETE FROM callbackd.tenant_leases WHERE instance_id = $1 AND tenant_id = $2
