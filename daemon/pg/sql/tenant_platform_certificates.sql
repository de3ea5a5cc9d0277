-- The platform certificates trusted for certificate-mode tenants (migrations/0009), read with
-- tenants_all.sql by read_tenants() in tenants.cpp, by position. Times as Unix milliseconds.
SELECT tenant_id, serial_no, certificate_pem,
       (extract(epoch FROM effective_at) * 1000)::bigint,
       (extract(epoch FROM expires_at) * 1000)::bigint,
       (extract(epoch FROM fetched_at) * 1000)::bigint
FROM callbackd.platform_certificates
ORDER BY tenant_id, serial_no
