-- The first response verified with a stored platform certificate (engine::Store::
-- platform_certificate_used): shows that a rotation took effect. $1 tenant_id, $2 serial_no.
UPDATE callbackd.platform_certificates
SET first_used_at = now()
WHERE tenant_id = $1 AND serial_no = $2 AND first_used_at IS NULL
