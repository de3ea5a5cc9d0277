-- A tenant's platform certificates that expired are no longer kept (engine::Store::
-- store_platform_certificates, after a download). $1 tenant_id.
DELETE FROM callbackd.platform_certificates
WHERE tenant_id = $1 AND expires_at < now()
