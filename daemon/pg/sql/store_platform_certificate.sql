-- A platform certificate a download listed and the daemon trusted (engine::Store::
-- store_platform_certificates). Listed again: only fetched_at moves (the PEM of a serial does
-- not change, and leaving it alone sends no NOTIFY to the other instances).
-- $1 tenant_id, $2 serial_no, $3 effective_at (Unix ms), $4 expires_at (Unix ms), $5 PEM.
INSERT INTO callbackd.platform_certificates
  (tenant_id, serial_no, effective_at, expires_at, certificate_pem, fetched_at)
VALUES ($1, $2, to_timestamp($3::bigint / 1000.0), to_timestamp($4::bigint / 1000.0), $5, now())
ON CONFLICT (tenant_id, serial_no) DO UPDATE SET fetched_at = now()
