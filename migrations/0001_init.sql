-- 0001_init: the SQL interface of callbackd (docs/product.md) and the daemon's internal state.
--
-- Migrations are forward-only: this file is checksummed into callbackd.schema_migrations when
-- applied and `callbackd migrate` refuses to run if it later changes. Change the schema by
-- adding migrations/NNNN_name.sql. The migrator runs each file in one transaction together
-- with its history row, under an advisory lock, so no statement here needs IF NOT EXISTS
-- except the schema, which the migrator's bootstrap already created to hold the history.
--
-- Contract objects (operators' scripts rely on their names): tenants, desired_callbacks,
-- sync_status, audit_log. Everything else is internal and may change in later migrations.

CREATE SCHEMA IF NOT EXISTS callbackd;

-- ---------------------------------------------------------------------------------------
-- Tenants: merchant accounts whose API key signs requests.

CREATE TABLE callbackd.tenants (
  tenant_id          text PRIMARY KEY,
  mchid              text NOT NULL,
  merchant_serial_no text NOT NULL,
  -- Key paths are NOT validated here: the daemon resolves them inside the credentials
  -- directory and refuses absolute paths, `..` and symlinks that escape it, because
  -- whoever can write this row must not be able to make the daemon read an arbitrary file.
  private_key_path   text NOT NULL,
  wechatpay_key_id   text NOT NULL,
  wechatpay_key_path text NOT NULL,
  -- WeChat Pay allows about 1000 calls a minute per calling merchant on this endpoint.
  rate_per_minute    integer NOT NULL DEFAULT 1000 CHECK (rate_per_minute > 0),
  mode               text NOT NULL DEFAULT 'apply' CHECK (mode IN ('apply', 'observe', 'paused')),
  max_in_flight      integer NOT NULL DEFAULT 4 CHECK (max_in_flight > 0),
  -- Only needed to download platform certificates; tenants on a WeChat Pay public key
  -- (PUB_KEY_ID_...) leave it NULL.
  apiv3_key_path     text NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE callbackd.tenants IS
  'Merchant accounts that sign requests (contract; see docs/product.md). '
  'created_at/updated_at are maintained by the database.';

-- Extra keys that verify responses besides tenants.wechatpay_key_id, so that a rotation
-- (old platform certificate -> new one, or certificate -> public key) has a window in which
-- responses signed with either are accepted.
CREATE TABLE callbackd.tenant_wechatpay_keys (
  tenant_id text NOT NULL REFERENCES callbackd.tenants (tenant_id) ON DELETE CASCADE,
  key_id    text NOT NULL,
  key_path  text NOT NULL,
  PRIMARY KEY (tenant_id, key_id)
);

-- Timestamps written by the database, not by the writer: an operator's script cannot get
-- them wrong and an auditor can trust them. now() (transaction start) gives every row
-- touched by one transaction the same time, which is what a batch change is.
CREATE FUNCTION callbackd.tenants_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.created_at := now();
  ELSE
    NEW.created_at := OLD.created_at;
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

CREATE TRIGGER tenants_touch
  BEFORE INSERT OR UPDATE ON callbackd.tenants
  FOR EACH ROW EXECUTE FUNCTION callbackd.tenants_touch();

-- A tenant un-paused, re-keyed or re-paced should take effect without waiting for the
-- daemon's poll interval.
CREATE FUNCTION callbackd.tenants_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('callbackd_tenants', NEW.tenant_id);
  RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_notify
  AFTER INSERT OR UPDATE ON callbackd.tenants
  FOR EACH ROW EXECUTE FUNCTION callbackd.tenants_notify();

-- ---------------------------------------------------------------------------------------
-- Desired state, written by operators with plain SQL.

-- Revisions, not timestamps, decide whether a row must be sent: a row is due when its
-- revision is newer than the revision of the last recorded apply. A sequence only moves
-- forward, so clock skew between PostgreSQL, the daemon and WeChat Pay can neither hide a
-- change nor make an applied row look changed again (no re-send loop).
CREATE SEQUENCE callbackd.desired_revision_seq AS bigint;

CREATE TABLE callbackd.desired_callbacks (
  mchid      text PRIMARY KEY,
  tenant_id  text NOT NULL REFERENCES callbackd.tenants (tenant_id),
  -- Deliberately no CHECK on mchid or notify_url: a bad row must be stored verbatim and
  -- shown as `invalid` with a message in sync_status. Refusing it here would fail a whole
  -- bulk load because of one row and leave the operator no record of what was wrong.
  notify_url text,
  switch     boolean NULL,  -- NULL: the `switch` field is omitted from the request
  updated_at timestamptz NOT NULL DEFAULT now(),
  revision   bigint NOT NULL DEFAULT 0
);

COMMENT ON TABLE callbackd.desired_callbacks IS
  'Desired notify URL and push switch per sub-merchant (contract). updated_at and revision '
  'are set by the database on every INSERT and UPDATE; an UPDATE that changes nothing '
  '(e.g. SET notify_url = notify_url) still makes the row due again, which is how a failed '
  'row is re-sent.';
COMMENT ON COLUMN callbackd.desired_callbacks.revision IS
  'Internal. From callbackd.desired_revision_seq on every write; compared with '
  'sub_merchant_state.revision to decide what to send.';

-- Overrides whatever the writer supplied. Every UPDATE bumps the revision, even one that
-- changes no value: "touched after the last apply" means "send again".
CREATE FUNCTION callbackd.desired_callbacks_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  NEW.revision := nextval('callbackd.desired_revision_seq');
  RETURN NEW;
END;
$$;

CREATE TRIGGER desired_callbacks_touch
  BEFORE INSERT OR UPDATE ON callbackd.desired_callbacks
  FOR EACH ROW EXECUTE FUNCTION callbackd.desired_callbacks_touch();

-- ---------------------------------------------------------------------------------------
-- The work queue: one row per sub-merchant whose desired row changed and has not been
-- settled yet, so finding work reads the queue of one tenant instead of comparing every
-- desired row with its state. The daemon claims entries (claimed_by/claim_token/
-- lease_until; a lapsed lease makes an entry claimable again after a crash) and deletes an
-- entry only when it settles THE REVISION IT CLAIMED (DELETE ... WHERE mchid = $1 AND
-- revision = $2), so a change that arrives while a request is in flight is never lost. A
-- transient failure keeps the entry and moves due_at to the next attempt; a permanent one
-- (or `invalid`) deletes it, so the row waits for its desired state to change.
CREATE TABLE callbackd.pending_work (
  -- Deleting the desired row removes its entry: nothing is sent for a deleted row (the
  -- sub-merchant keeps whatever notify URL WeChat Pay last accepted).
  mchid       text PRIMARY KEY
                REFERENCES callbackd.desired_callbacks (mchid) ON DELETE CASCADE ON UPDATE CASCADE,
  tenant_id   text NOT NULL,
  revision    bigint NOT NULL,
  due_at      timestamptz NOT NULL DEFAULT now(),
  claimed_by  text NULL,
  claim_token bigint NULL,
  lease_until timestamptz NULL
);

CREATE INDEX pending_work_tenant_due ON callbackd.pending_work (tenant_id, due_at);

-- Claim tokens are unique across instances, so a stale claimer cannot settle an entry that
-- another instance re-claimed after its lease lapsed.
CREATE SEQUENCE callbackd.claim_token_seq AS bigint;

-- Queue the newest revision, due now, and drop any claim: a row changed while in flight
-- must be sent again with its new values. pg_notify de-duplicates identical payloads within
-- a transaction, so a bulk load of one tenant wakes the daemon once, not once per row.
CREATE FUNCTION callbackd.desired_callbacks_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO callbackd.pending_work AS w (mchid, tenant_id, revision, due_at)
  VALUES (NEW.mchid, NEW.tenant_id, NEW.revision, now())
  ON CONFLICT (mchid) DO UPDATE
    SET tenant_id   = EXCLUDED.tenant_id,
        revision    = GREATEST(w.revision, EXCLUDED.revision),
        due_at      = EXCLUDED.due_at,
        claimed_by  = NULL,
        claim_token = NULL,
        lease_until = NULL;
  PERFORM pg_notify('callbackd_desired', NEW.tenant_id);
  RETURN NULL;
END;
$$;

CREATE TRIGGER desired_callbacks_enqueue
  AFTER INSERT OR UPDATE ON callbackd.desired_callbacks
  FOR EACH ROW EXECUTE FUNCTION callbackd.desired_callbacks_enqueue();

-- ---------------------------------------------------------------------------------------
-- What the daemon recorded, per sub-merchant it has touched. No foreign key to
-- desired_callbacks: the record of what WeChat Pay holds outlives a deleted desired row.
CREATE TABLE callbackd.sub_merchant_state (
  mchid              text PRIMARY KEY,
  tenant_id          text NOT NULL,
  revision           bigint NOT NULL,  -- the desired revision this state is about
  state              text NOT NULL CHECK (state IN ('in_sync', 'retrying', 'failed', 'invalid')),
  applied_notify_url text NULL,
  applied_switch     boolean NULL,
  applied_revision   bigint NULL,      -- the desired revision last confirmed by WeChat Pay
  -- Verbatim from the verified response, for the operator and the auditor. The parsed copy
  -- is informational only: decisions use revisions, never WeChat Pay's clock.
  update_time        text NULL,
  update_time_parsed timestamptz NULL,
  attempts           integer NOT NULL DEFAULT 0,
  last_http_status   integer NULL,
  last_error_code    text NULL,
  last_error_message text NULL,
  next_attempt_at    timestamptz NULL,
  changed_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sub_merchant_state_tenant_state ON callbackd.sub_merchant_state (tenant_id, state);

-- Tenant-wide conditions found by the daemon (bad credentials pause the tenant, not the
-- daemon); operators pause with tenants.mode instead.
CREATE TABLE callbackd.tenant_state (
  tenant_id     text PRIMARY KEY REFERENCES callbackd.tenants (tenant_id) ON DELETE CASCADE,
  paused_reason text NULL,
  paused_at     timestamptz NULL,
  next_probe_at timestamptz NULL,
  error_code    text NULL,
  changed_at    timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------
-- sync_status (contract): one row per desired row. The first eleven columns are the
-- contract, in this order; the rest are extras for operators.
-- A state row about an older revision says nothing about the current desired values, so
-- such a row (or none at all) reads as `pending`. A paused tenant wins over everything:
-- nothing of it moves until it is resumed.
CREATE VIEW callbackd.sync_status AS
SELECT
  d.mchid,
  d.tenant_id,
  CASE
    WHEN t.mode = 'paused' OR ts.paused_reason IS NOT NULL THEN 'paused'
    WHEN s.mchid IS NULL OR s.revision < d.revision THEN 'pending'
    ELSE s.state
  END AS state,
  s.applied_notify_url,
  s.applied_switch,
  s.update_time,
  s.attempts,
  s.last_http_status,
  s.last_error_code,
  s.last_error_message,
  s.next_attempt_at,
  d.notify_url       AS desired_notify_url,
  d.switch           AS desired_switch,
  d.updated_at       AS desired_updated_at,
  ts.paused_reason   AS tenant_paused_reason,
  s.changed_at       AS state_changed_at
FROM callbackd.desired_callbacks d
JOIN callbackd.tenants t ON t.tenant_id = d.tenant_id
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = d.tenant_id
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = d.mchid;

COMMENT ON VIEW callbackd.sync_status IS
  'One row per desired row: in_sync | pending | retrying | failed | invalid | paused (contract).';

-- ---------------------------------------------------------------------------------------
-- audit_log (contract): one row per attempt, written in the same transaction as the state
-- it explains. No foreign keys: evidence must outlive the tenant and the desired row.
CREATE TABLE callbackd.audit_log (
  -- ALWAYS: ids come from the database only, so a writer cannot forge an id or block
  -- future inserts with a colliding one.
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- clock_timestamp(), not now(): attempts logged within one transaction keep their order.
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  tenant_id        text NOT NULL,
  mchid            text NULL,          -- NULL only for tenant-wide events
  notify_url       text NULL,
  switch           boolean NULL,
  http_status      integer NULL,       -- NULL when no response arrived
  error_code       text NULL,
  error_message    text NULL,
  request_id       text NULL,          -- WeChat Pay's Request-ID response header
  outcome          text NOT NULL,      -- `applied` when a verified response set the row
  latency_ms       integer NULL,
  attempt          integer NULL,
  -- Filled by the database, so an INSERT naming only the columns above works and the
  -- auditor learns who wrote the row from where, independently of the writer.
  db_user          text NOT NULL DEFAULT current_user,
  client_addr      inet NULL DEFAULT inet_client_addr(),
  application_name text NULL DEFAULT current_setting('application_name', true),
  transaction_id   xid8 NOT NULL DEFAULT pg_current_xact_id(),
  instance         text NULL,          -- the daemon instance (host/pid) when the daemon writes
  desired_revision bigint NULL,        -- the desired revision the attempt was about
  update_time      text NULL           -- WeChat Pay's update_time, verbatim
);

CREATE INDEX audit_log_mchid_created ON callbackd.audit_log (mchid, created_at);
CREATE INDEX audit_log_tenant_created ON callbackd.audit_log (tenant_id, created_at);

COMMENT ON TABLE callbackd.audit_log IS
  'One row per attempt (contract). Append-only: UPDATE, DELETE and TRUNCATE are refused by '
  'triggers for every role, including the daemon''s.';

-- One statement-level trigger for all three operations rather than a row trigger: a
-- statement trigger also fires when no row matches, so a mistaken DELETE is refused loudly
-- instead of "succeeding" only because the WHERE clause happened to match nothing. Grants
-- are not enough on their own because the owner (often the daemon's role) bypasses them.
CREATE FUNCTION callbackd.audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'callbackd.audit_log is append-only: UPDATE/DELETE/TRUNCATE refused (attempted %)', TG_OP
    USING ERRCODE = 'restrict_violation',
          HINT = 'audit rows are evidence; to archive, copy them elsewhere and keep this table';
END;
$$;

CREATE TRIGGER audit_log_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON callbackd.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION callbackd.audit_log_refuse_change();
