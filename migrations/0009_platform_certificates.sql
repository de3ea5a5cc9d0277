-- 0009_platform_certificates: certificate mode, and the platform certificates callbackd
-- downloads for it (issue 16; docs/runbook.md "Platform certificates").
--
-- A tenant verifies WeChat Pay's responses in one of two ways:
--  - a key it is given: wechatpay_key_id + wechatpay_key_path (a WeChat Pay public key
--    PUB_KEY_ID_..., or a platform certificate an operator fetched by hand), as before;
--  - certificate mode: wechatpay_key_id and wechatpay_key_path NULL and apiv3_key_path set.
--    callbackd downloads the platform certificates (GET /v3/certificates), decrypts them with
--    the APIv3 key, checks and stores them below, and refreshes them as WeChat Pay rotates.
-- So the two columns lose NOT NULL (existing rows all have them, and keep meaning what they
-- meant) and a CHECK admits only rows configured one way or the other: both key columns
-- together, or neither with an APIv3 key. A row with both ways set uses the given key; its
-- APIv3 key is then not used.
ALTER TABLE callbackd.tenants
  ALTER COLUMN wechatpay_key_id DROP NOT NULL,
  ALTER COLUMN wechatpay_key_path DROP NOT NULL,
  ADD CONSTRAINT tenants_verification_configured CHECK (
    (wechatpay_key_id IS NULL) = (wechatpay_key_path IS NULL)
    AND (wechatpay_key_path IS NOT NULL OR apiv3_key_path IS NOT NULL));

COMMENT ON CONSTRAINT tenants_verification_configured ON callbackd.tenants IS
  'Either wechatpay_key_id and wechatpay_key_path (a given key), or neither and apiv3_key_path '
  '(certificate mode: platform certificates downloaded into platform_certificates).';

-- Trusted platform certificates of certificate-mode tenants, as the daemon accepted them
-- (core/wechatpay/platform_certificates.h: decrypted, serial and validity checked, the answer
-- signed by a listed certificate and, after the first, by one already trusted here). Stored so
-- that a restart or another instance verifies with them without downloading, and so that the
-- next download is judged against them. The daemon deletes a certificate once it expired.
-- An operator may insert one (a PEM checked by hand) to recover a tenant whose rotation was
-- missed (docs/runbook.md), or delete a tenant's rows to make its next download trusted on
-- first use again.
CREATE TABLE callbackd.platform_certificates (
  tenant_id       text NOT NULL REFERENCES callbackd.tenants (tenant_id) ON DELETE CASCADE,
  -- The certificate's serial, uppercase hex as Wechatpay-Serial carries it.
  serial_no       text NOT NULL CHECK (serial_no ~ '^[0-9A-F]{1,40}$'),
  -- The certificate's own notBefore / notAfter.
  effective_at    timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  certificate_pem text NOT NULL CHECK (certificate_pem LIKE '-----BEGIN CERTIFICATE-----%'),
  -- When a download last listed it (the refresh schedule counts from the newest).
  fetched_at      timestamptz NOT NULL DEFAULT now(),
  -- When a response signed with it was first verified: shows that a rotation took effect.
  first_used_at   timestamptz NULL,
  PRIMARY KEY (tenant_id, serial_no),
  CHECK (effective_at < expires_at)
);

COMMENT ON TABLE callbackd.platform_certificates IS
  'WeChat Pay platform certificates trusted for certificate-mode tenants (downloaded and checked '
  'by the daemon). Internal; see docs/sql.md.';

-- The daemon writes what it downloads and records first use; operators may repair (above).
GRANT SELECT, INSERT, UPDATE, DELETE ON callbackd.platform_certificates TO callbackd_daemon;
GRANT INSERT, UPDATE, DELETE ON callbackd.platform_certificates TO callbackd_operator;

-- A stored certificate changes what a tenant verifies with: other instances re-read it as they
-- do a changed tenant row (the daemon LISTENs on callbackd_tenants).
CREATE FUNCTION callbackd.platform_certificates_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('callbackd_tenants', OLD.tenant_id);
  ELSE
    PERFORM pg_notify('callbackd_tenants', NEW.tenant_id);
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER platform_certificates_notify
  AFTER INSERT OR DELETE OR UPDATE OF certificate_pem ON callbackd.platform_certificates
  FOR EACH ROW EXECUTE FUNCTION callbackd.platform_certificates_notify();
