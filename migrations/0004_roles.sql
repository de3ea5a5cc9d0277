-- 0004_roles: least privilege (issue 9) and audit retention (issue 6). See docs/security.md.
--
-- Three NOLOGIN group roles; people and services log in as their own roles and are made
-- members (`CREATE ROLE alice LOGIN; GRANT callbackd_operator TO alice;`):
--   callbackd_operator   writes the desired state (tenants, keys, desired_callbacks), reads all
--   callbackd_daemon     exactly what `callbackd run/plan/status/check-config` execute
--   callbackd_retention  may call callbackd.apply_audit_retention() and nothing else
-- `callbackd migrate` keeps running as the schema owner, which owns every object here and so
-- is the only role that can change the schema or these grants.
--
-- Roles are cluster-wide while grants are per database: several callbackd databases (and the
-- test harness's template clones) share one set of roles, so a role is created only if it is
-- missing, and every GRANT below is repeated in each database by its own migration.

-- ---------------------------------------------------------------------------------------
-- The roles. Two databases migrating at once can both see a role missing; the loser of the
-- race gets duplicate_object, which means the role is there, which is all we need.
DO $roles$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['callbackd_operator', 'callbackd_daemon', 'callbackd_retention'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION
        WHEN duplicate_object THEN NULL;
        WHEN insufficient_privilege THEN
          RAISE EXCEPTION 'migrations/0004_roles.sql: role % does not exist and % may not create roles', r, current_user
            USING HINT = 'as a superuser run: CREATE ROLE callbackd_operator NOLOGIN; CREATE ROLE callbackd_daemon NOLOGIN; '
                         'CREATE ROLE callbackd_retention NOLOGIN; then run `callbackd migrate` again '
                         '(or give the schema owner CREATEROLE)';
      END;
    END IF;
  END LOOP;
END
$roles$;

-- Start from nothing in this schema, so the grants below are the whole truth even where an
-- administrator had created these roles by hand with other grants (e.g. an older manual
-- "operator role" recipe that let operators write pending_work).
REVOKE ALL ON ALL TABLES IN SCHEMA callbackd FROM callbackd_operator, callbackd_daemon, callbackd_retention;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA callbackd FROM callbackd_operator, callbackd_daemon, callbackd_retention;
REVOKE ALL ON SCHEMA callbackd FROM callbackd_operator, callbackd_daemon, callbackd_retention;

GRANT USAGE ON SCHEMA callbackd TO callbackd_operator, callbackd_daemon, callbackd_retention;

-- ---------------------------------------------------------------------------------------
-- Triggers that write on the writer's behalf run as the schema owner. An operator may change
-- desired rows but not the work queue, and must not have to: the enqueue trigger writes
-- pending_work, the touch trigger draws the revision. SECURITY DEFINER with a fixed
-- search_path (pg_temp last) so that no object a writer creates can be resolved inside them;
-- their bodies name every relation with its schema anyway. Trigger functions cannot be called
-- directly, so this grants nothing beyond what the trigger does. They are owned by the role
-- that ran 0001, which is the schema owner (migrate always runs as the owner).
ALTER FUNCTION callbackd.desired_callbacks_enqueue() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION callbackd.desired_callbacks_touch() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
-- These two need no privilege (pg_notify, NEW.*), so they stay invoker's rights; the fixed
-- search_path is for consistency and costs nothing.
ALTER FUNCTION callbackd.tenants_touch() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION callbackd.tenants_notify() SET search_path = pg_catalog, pg_temp;

-- ---------------------------------------------------------------------------------------
-- callbackd_operator: writes the desired state, reads everything (sync_status, audit_log,
-- the daemon's internal tables for diagnosis, schema_migrations). Deleting a desired row or a
-- tenant cascades into pending_work/tenant_state/tenant_leases through foreign keys, which
-- run as the owner of those tables: no write grant on them is needed.
GRANT SELECT ON ALL TABLES IN SCHEMA callbackd TO callbackd_operator;
GRANT INSERT, UPDATE, DELETE ON callbackd.desired_callbacks, callbackd.tenants, callbackd.tenant_wechatpay_keys
  TO callbackd_operator;
-- Tables added by later migrations stay readable to operators without each migration
-- remembering it (applies to objects the migrating role creates in this schema).
ALTER DEFAULT PRIVILEGES IN SCHEMA callbackd GRANT SELECT ON TABLES TO callbackd_operator;

-- ---------------------------------------------------------------------------------------
-- callbackd_daemon, from the statements in daemon/pg/*.cpp:
--   tenants.cpp            SELECT tenants, tenant_wechatpay_keys
--   migrator.cpp           schema_status(): SELECT schema_migrations (run, check-config)
--   reconcile_store.cpp    claim_due: SELECT ... FOR UPDATE + UPDATE pending_work (FOR UPDATE
--                          needs UPDATE), nextval(claim_token_seq), SELECT desired_callbacks,
--                          tenant_leases, sub_merchant_state;
--                          record_batch: INSERT audit_log (ON CONFLICT DO NOTHING),
--                          upsert sub_merchant_state, DELETE/UPDATE pending_work;
--                          release/drop: UPDATE/DELETE pending_work;
--                          pause/resume/pauses: upsert/UPDATE/SELECT tenant_state;
--                          queue_resync: INSERT pending_work from desired/tenants/state;
--                          heartbeat: upsert/DELETE instances, UPDATE/DELETE/upsert
--                          tenant_leases with nextval(tenant_lease_seq), SELECT audit_log
--                          (recent sends);
--   inspect.cpp            plan/status: SELECT pending_work, desired_callbacks,
--                          sub_merchant_state, tenant_state, sync_status
-- audit_log: INSERT and SELECT only. No UPDATE/DELETE/TRUNCATE privilege is the barrier that
-- keeps a compromised daemon from rewriting history; the append-only trigger is the second.
-- The identity column of audit_log needs no sequence grant (identity sequences are used by
-- the table itself); desired_revision_seq is drawn only by the definer's-rights trigger.
GRANT SELECT ON callbackd.tenants, callbackd.tenant_wechatpay_keys, callbackd.desired_callbacks,
                callbackd.schema_migrations, callbackd.sync_status
  TO callbackd_daemon;
GRANT SELECT, INSERT, UPDATE, DELETE ON callbackd.pending_work, callbackd.sub_merchant_state,
                                        callbackd.tenant_state, callbackd.instances, callbackd.tenant_leases
  TO callbackd_daemon;
GRANT SELECT, INSERT ON callbackd.audit_log TO callbackd_daemon;
GRANT USAGE ON SEQUENCE callbackd.claim_token_seq, callbackd.tenant_lease_seq TO callbackd_daemon;

-- ---------------------------------------------------------------------------------------
-- Audit retention. audit_log is append-only for everyone (0001); the one way to remove old
-- rows is callbackd.apply_audit_retention(), which runs as the schema owner and is executable
-- only by callbackd_retention. Nobody else holds DELETE on audit_log, so that privilege is
-- the barrier; the trigger below additionally refuses a DELETE by the owner itself unless it
-- comes from inside the function, so a mistaken `DELETE FROM callbackd.audit_log` by the
-- owner still fails loudly.
--
-- The flag is a transaction-local custom setting that the function turns on around its
-- DELETEs and off again before it returns; on an error it is rolled back with the (sub)
-- transaction, so it is never left on for the rest of the caller's transaction. (Not a SET
-- clause on the function: since PostgreSQL 15 only a superuser may attach an unregistered
-- custom setting to a function, and the schema owner is not one.) Anyone can set a custom
-- setting, hence the second condition: the DELETE must run as the function's owner, which
-- outside the function only the owner itself does.

-- Below this the function refuses: a typo such as '7' (seconds) or '1 day' must not wipe the
-- evidence an auditor asks for next week.
CREATE FUNCTION callbackd.apply_audit_retention(keep interval, batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- now(): one cutoff for the whole call, however long it takes.
  cutoff    timestamptz;
  last_id   bigint := 0;
  range_end bigint;
  in_range  bigint;
  deleted   bigint;
  total     bigint := 0;
  batches   integer := 0;
BEGIN
  IF keep IS NULL OR keep < interval '7 days' THEN
    RAISE EXCEPTION 'callbackd.apply_audit_retention: keep must be at least 7 days, got %', coalesce(keep::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'audit rows are evidence; pass how long to keep them, e.g. apply_audit_retention(''400 days'')';
  END IF;
  IF batch_size IS NULL OR batch_size < 1 OR batch_size > 1000000 THEN
    RAISE EXCEPTION 'callbackd.apply_audit_retention: batch_size must be between 1 and 1000000, got %',
                    coalesce(batch_size::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  cutoff := now() - keep;
  PERFORM set_config('callbackd.audit_retention', 'on', true);

  -- Walk the primary key in id ranges of batch_size rows: each DELETE touches one short index
  -- range (never rescans rows deleted by an earlier batch of this call) and takes only
  -- ROW EXCLUSIVE on the table, which does not conflict with the daemon's INSERTs and SELECTs,
  -- so the reconciler is never blocked. Ids and created_at are both assigned at insert, so
  -- ids follow time: the first range in which nothing is old enough ends the walk. A single
  -- odd row (a writer may name created_at, e.g. in the future) does not stop it; a row whose
  -- created_at is older than its id suggests may be left for a later run, and no row younger
  -- than the cutoff is ever deleted: the DELETE itself checks created_at.
  LOOP
    SELECT max(id), count(*) INTO range_end, in_range
    FROM (SELECT id FROM callbackd.audit_log WHERE id > last_id ORDER BY id LIMIT batch_size) r;
    EXIT WHEN in_range = 0;
    DELETE FROM callbackd.audit_log
    WHERE id > last_id AND id <= range_end AND created_at < cutoff;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    IF deleted > 0 THEN
      batches := batches + 1;
      total := total + deleted;
    END IF;
    EXIT WHEN deleted = 0;
    last_id := range_end;
  END LOOP;
  PERFORM set_config('callbackd.audit_retention', 'off', true);

  -- Removing evidence is itself evidence: who (the login role), when, up to which time.
  INSERT INTO callbackd.audit_log (tenant_id, mchid, outcome, error_message, db_user)
  VALUES ('', NULL, 'retention',
          format('deleted %s audit rows created before %s (keep %s) in %s batches of at most %s',
                 total, cutoff, keep, batches, batch_size),
          session_user);
  RAISE NOTICE 'callbackd.apply_audit_retention: deleted % rows created before % in % batches', total, cutoff, batches;
  RETURN total;
END;
$$;

COMMENT ON FUNCTION callbackd.apply_audit_retention(interval, integer) IS
  'Deletes audit_log rows older than keep (at least 7 days) in id-range batches; returns the '
  'number deleted and appends an outcome=retention row. The only way to delete audit rows; '
  'EXECUTE is granted to callbackd_retention only. See docs/security.md.';

REVOKE ALL ON FUNCTION callbackd.apply_audit_retention(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callbackd.apply_audit_retention(interval, integer) TO callbackd_retention;

-- The append-only trigger, now with the one exception above. UPDATE and TRUNCATE stay refused
-- for everyone: retention never needs them.
CREATE OR REPLACE FUNCTION callbackd.audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE'
     AND current_setting('callbackd.audit_retention', true) = 'on'
     AND current_user = (SELECT pg_get_userbyid(p.proowner) FROM pg_proc p
                         WHERE p.oid = 'callbackd.apply_audit_retention(interval, integer)'::regprocedure) THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'callbackd.audit_log is append-only: UPDATE/DELETE/TRUNCATE refused (attempted %)', TG_OP
    USING ERRCODE = 'restrict_violation',
          HINT = 'audit rows are evidence; old rows are removed only by callbackd.apply_audit_retention() (docs/security.md)';
END;
$$;
