DELETE FROM callbackd.tenant_leases WHERE instance_id = $1
