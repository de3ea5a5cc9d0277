-- 0008_guard_rails: brakes on mass changes (issue 18). One UPDATE can redirect thousands of
-- merchants' payment events; a typo, a script run against the wrong tenant or a stolen operator
-- login must not get that far unnoticed. See docs/sql.md ("Guard rails").
--
-- 1. tenants.allowed_notify_hosts text[] (NULL: any host). The daemon judges every row's
--    notify_url host against it (daemon/core/desired/notify_host.h): a row pointing elsewhere is
--    `invalid` with a message naming the host and the list, audited, never sent. Changing the
--    list queues the tenant's rows again so that they are judged against the new list.
-- 2. tenants.max_changes_per_hour integer (NULL: no budget). A claimed row whose send would
--    change what WeChat Pay holds (its values differ from the applied ones; not a first apply)
--    is admitted against the budget over a rolling hour (change_admissions); beyond it the queue
--    entry is HELD: never claimed, shown as `held` in sync_status with the reason, until
--    callbackd.approve_changes(tenant) releases it (role callbackd_operator) or the operator
--    undoes the change. While a tenant holds anything, every further change of it is held too:
--    the budget refilling an hour later must not let a held mass change trickle out unapproved.

ALTER TABLE callbackd.tenants
  ADD COLUMN allowed_notify_hosts text[] NULL,
  ADD COLUMN max_changes_per_hour integer NULL CHECK (max_changes_per_hour >= 0);

COMMENT ON COLUMN callbackd.tenants.allowed_notify_hosts IS
  'Hosts notify URLs may point to: names (hooks.example.com) or leading-wildcard suffixes '
  '(*.example.com, subdomains at any depth, not the apex). NULL: any host. Compared after '
  'percent-decoding, IDNA and lower-casing; a row elsewhere is invalid and never sent.';
COMMENT ON COLUMN callbackd.tenants.max_changes_per_hour IS
  'Changes of what WeChat Pay holds allowed per rolling hour before further ones are held for '
  'callbackd.approve_changes(tenant_id). NULL: no budget; 0: every change waits for approval.';

-- ---------------------------------------------------------------------------------------
-- Held queue entries. due_at = infinity keeps them out of every claim and poll through the
-- index ranges those already read (due_at <= now()), so a held backlog costs a claim nothing.
ALTER TABLE callbackd.pending_work
  ADD COLUMN held_at     timestamptz NULL,
  ADD COLUMN held_reason text NULL;

CREATE INDEX pending_work_tenant_held ON callbackd.pending_work (tenant_id) WHERE held_at IS NOT NULL;

-- A new write of a held row queues the new revision like any other (it is judged, and held
-- again if it is still a change over the budget; an undo is not a change and goes out).
CREATE OR REPLACE FUNCTION callbackd.desired_callbacks_enqueue() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO callbackd.pending_work AS w (mchid, tenant_id, revision, due_at, resync)
  VALUES (NEW.mchid, NEW.tenant_id, NEW.revision, now(), false)
  ON CONFLICT (mchid) DO UPDATE
    SET tenant_id   = EXCLUDED.tenant_id,
        revision    = GREATEST(w.revision, EXCLUDED.revision),
        due_at      = EXCLUDED.due_at,
        claimed_by  = NULL,
        claim_token = NULL,
        lease_until = NULL,
        resync      = false,
        held_at     = NULL,
        held_reason = NULL;
  PERFORM pg_notify('callbackd_desired', NEW.tenant_id);
  RETURN NULL;
END;
$$;

-- Re-judging after the allowed hosts changed: every desired row of the tenant without an entry
-- gets one (rows queued already, held ones included, are judged when claimed anyway). The
-- daemon then drops the entries of rows that are still fine, marks rows now disallowed
-- invalid (their applied values stay) and sends rows that were invalid only for their host.
CREATE FUNCTION callbackd.tenants_rejudge_hosts() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO callbackd.pending_work (mchid, tenant_id, revision, due_at, resync)
  SELECT d.mchid, d.tenant_id, d.revision, now(), false
  FROM callbackd.desired_callbacks d
  WHERE d.tenant_id = NEW.tenant_id
  ON CONFLICT (mchid) DO NOTHING;
  PERFORM pg_notify('callbackd_desired', NEW.tenant_id);
  RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_rejudge_hosts
  AFTER UPDATE OF allowed_notify_hosts ON callbackd.tenants
  FOR EACH ROW WHEN (OLD.allowed_notify_hosts IS DISTINCT FROM NEW.allowed_notify_hosts)
  EXECUTE FUNCTION callbackd.tenants_rejudge_hosts();

-- ---------------------------------------------------------------------------------------
-- The budget's ledger: one row per (sub-merchant, revision) let through as a change, by the
-- daemon (admitted_at) or by an approval (approval_id). A retry of the same revision finds its
-- row and is not counted again. Rows of the last hour without an approval are the budget
-- spent; the daemon forgets rows older than a day.
CREATE TABLE callbackd.change_admissions (
  mchid       text NOT NULL,
  revision    bigint NOT NULL,
  tenant_id   text NOT NULL,
  admitted_at timestamptz NOT NULL DEFAULT now(),
  approval_id bigint NULL,
  PRIMARY KEY (mchid, revision)
);

CREATE INDEX change_admissions_tenant_admitted ON callbackd.change_admissions (tenant_id, admitted_at);

-- Who approved what (contract, readable by operators): one row per approve_changes() call.
CREATE TABLE callbackd.change_approvals (
  approval_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id      text NOT NULL,
  approved_at    timestamptz NOT NULL DEFAULT now(),
  approved_by    text NOT NULL DEFAULT session_user,  -- the login role, not the function's owner
  rows_released  integer NOT NULL,
  up_to_revision bigint NULL                          -- the newest desired revision released
);

CREATE INDEX change_approvals_tenant ON callbackd.change_approvals (tenant_id, approved_at);

COMMENT ON TABLE callbackd.change_approvals IS
  'One row per callbackd.approve_changes(tenant_id): who (session_user), when, how many held '
  'rows it released and up to which desired revision.';

-- Approval and the daemon's admissions take the same transaction-scoped advisory lock per
-- tenant, so a claim never counts against a budget that an approval is resetting, and an
-- approval never misses an entry held a moment before.
CREATE FUNCTION callbackd.change_budget_lock(tenant_id text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_advisory_xact_lock(hashtext('callbackd.change_budget'), hashtext(tenant_id)) $$;

CREATE FUNCTION callbackd.approve_changes(tenant_id text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t        text := tenant_id;
  approval bigint;
  released integer;
  newest   bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM callbackd.tenants x WHERE x.tenant_id = t) THEN
    RAISE EXCEPTION 'callbackd.approve_changes: no tenant %', coalesce(quote_literal(t), 'NULL')
      USING ERRCODE = 'no_data_found',
            HINT = 'pass a tenant_id of callbackd.tenants, e.g. SELECT callbackd.approve_changes(''acme'')';
  END IF;
  PERFORM callbackd.change_budget_lock(t);

  INSERT INTO callbackd.change_approvals (tenant_id, approved_by, rows_released)
  VALUES (t, session_user, 0)
  RETURNING approval_id INTO approval;

  -- Up to the current revision: what is held now; a row written after this call is judged anew.
  WITH freed AS (
    UPDATE callbackd.pending_work w
    SET held_at = NULL, held_reason = NULL, due_at = now()
    WHERE w.tenant_id = t AND w.held_at IS NOT NULL
    RETURNING w.mchid, w.revision
  ), covered AS (
    INSERT INTO callbackd.change_admissions AS a (mchid, revision, tenant_id, approval_id)
    SELECT mchid, revision, t, approval FROM freed
    ON CONFLICT (mchid, revision) DO UPDATE SET approval_id = EXCLUDED.approval_id
  )
  SELECT count(*), max(revision) INTO released, newest FROM freed;

  -- The approval covers the whole change, the part the budget let through included: the next
  -- change starts a fresh budget instead of being held at once.
  UPDATE callbackd.change_admissions a SET approval_id = approval
  WHERE a.tenant_id = t AND a.approval_id IS NULL;

  UPDATE callbackd.change_approvals SET rows_released = released, up_to_revision = newest
  WHERE approval_id = approval;

  INSERT INTO callbackd.audit_log (tenant_id, mchid, outcome, error_message, desired_revision)
  VALUES (t, NULL, 'changes_approved',
          format('%s held changes released by %s (change_approvals.approval_id %s)', released, session_user, approval),
          newest);
  PERFORM pg_notify('callbackd_desired', t);
  RETURN released;
END;
$$;

COMMENT ON FUNCTION callbackd.approve_changes(text) IS
  'Releases the changes held for the tenant by its change budget (tenants.max_changes_per_hour) '
  'up to the current revision; records the approval in change_approvals and audit_log '
  '(outcome changes_approved); returns how many rows it released. callbackd_operator only.';

REVOKE ALL ON FUNCTION callbackd.approve_changes(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callbackd.approve_changes(text) TO callbackd_operator;
REVOKE ALL ON FUNCTION callbackd.change_budget_lock(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callbackd.change_budget_lock(text) TO callbackd_daemon;

-- The daemon admits and holds (daemon/pg/sql/admit_changes.sql) and reads approvals for `status`;
-- operators read both tables through 0004's default privileges.
GRANT SELECT, INSERT, DELETE ON callbackd.change_admissions TO callbackd_daemon;
GRANT SELECT ON callbackd.change_approvals TO callbackd_daemon;

-- ---------------------------------------------------------------------------------------
-- sync_status gains `held` (after `paused`: a paused tenant moves nothing either way) with the
-- reason in last_error_code/last_error_message, and held_at at the end.
CREATE OR REPLACE VIEW callbackd.sync_status AS
SELECT
  d.mchid,
  d.tenant_id,
  CASE
    WHEN t.mode = 'paused' OR ts.paused_reason IS NOT NULL THEN 'paused'
    WHEN w.held_at IS NOT NULL THEN 'held'
    WHEN s.mchid IS NULL OR s.revision < d.revision THEN 'pending'
    ELSE s.state
  END AS state,
  s.applied_notify_url,
  s.applied_switch,
  s.update_time,
  s.attempts,
  s.last_http_status,
  CASE WHEN w.held_at IS NOT NULL THEN 'CHANGE_BUDGET_EXCEEDED' ELSE s.last_error_code END AS last_error_code,
  CASE WHEN w.held_at IS NOT NULL THEN w.held_reason ELSE s.last_error_message END AS last_error_message,
  s.next_attempt_at,
  d.notify_url       AS desired_notify_url,
  d.switch           AS desired_switch,
  d.updated_at       AS desired_updated_at,
  ts.paused_reason   AS tenant_paused_reason,
  s.changed_at       AS state_changed_at,
  w.held_at
FROM callbackd.desired_callbacks d
JOIN callbackd.tenants t ON t.tenant_id = d.tenant_id
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = d.tenant_id
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = d.mchid
LEFT JOIN callbackd.pending_work w ON w.mchid = d.mchid;

COMMENT ON VIEW callbackd.sync_status IS
  'One row per desired row: in_sync | pending | retrying | failed | invalid | paused | held (contract).';
