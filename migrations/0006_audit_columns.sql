-- 0006_audit_columns: the audit log's own columns are the database's, whoever writes the row.
--
-- db_user, created_at, client_addr, application_name and transaction_id (0001) say who wrote an
-- audit row, when, from where and in which transaction. They were column DEFAULTs, and a default
-- is only what a writer gets when it does not name the column: the daemon's role (0004 grants it
-- INSERT on audit_log) could write `created_at = '2000-01-01'` or `db_user = 'alice'` and the row
-- would say so. A BEFORE INSERT trigger now sets them on every row, overriding whatever the
-- INSERT named, like tenants_touch and desired_callbacks_touch do for their timestamps.
--
-- Why a trigger and not column-level INSERT grants (GRANT INSERT (tenant_id, ...) ON audit_log):
--  - grants bind only roles that lack ownership: the schema owner (the role `callbackd migrate`
--    runs as) and every SECURITY DEFINER function it owns (apply_audit_retention writes an audit
--    row) would still write any value; a trigger applies to every writer, the owner included;
--  - a writer naming a column it may not write fails its whole INSERT, which for the daemon would
--    mean a lost audit row and a stuck batch; the trigger records the row with the true values;
--  - the grant list would have to be kept in step with every column later migrations add.
-- Only a superuser (or the owner, deliberately: ALTER TABLE ... DISABLE TRIGGER) can get past
-- it, e.g. to load archived rows with their original values: `SET session_replication_role =
-- replica` skips ordinary triggers, which is also what pg_restore --disable-triggers does. A
-- full pg_restore creates triggers after loading the data and so keeps archived values too.
--
-- The values:
--  - db_user: session_user, the role that logged in. Not current_user: inside a SECURITY DEFINER
--    function that is the function's owner (apply_audit_retention would be recorded as the
--    schema owner, not as the retention login that called it), and after SET ROLE it is the role
--    set, not who authenticated. For a login that does neither, as the daemon's, they are the
--    same, so rows written so far keep their meaning. The column default follows, so that the
--    table definition says what the trigger does.
--  - created_at: clock_timestamp(), as the default was: attempts logged within one transaction
--    keep their order.
--  - client_addr, application_name, transaction_id: the session's and transaction's own.

CREATE FUNCTION callbackd.audit_log_stamp() RETURNS trigger
LANGUAGE plpgsql
-- Invoker's rights: nothing here needs a privilege, and session_user, the client address and
-- the setting are the writer's session's in any case.
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  NEW.db_user := session_user;
  NEW.created_at := clock_timestamp();
  NEW.client_addr := inet_client_addr();
  NEW.application_name := current_setting('application_name', true);
  NEW.transaction_id := pg_current_xact_id();
  RETURN NEW;
END;
$$;

CREATE TRIGGER audit_log_stamp
  BEFORE INSERT ON callbackd.audit_log
  FOR EACH ROW EXECUTE FUNCTION callbackd.audit_log_stamp();

ALTER TABLE callbackd.audit_log ALTER COLUMN db_user SET DEFAULT session_user;

COMMENT ON TRIGGER audit_log_stamp ON callbackd.audit_log IS
  'Sets db_user (session_user), created_at, client_addr, application_name and transaction_id on '
  'every INSERT, overriding values the INSERT names: the writer cannot choose them. See '
  'migrations/0006_audit_columns.sql and docs/security.md.';
