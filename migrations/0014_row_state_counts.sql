-- 0014_row_state_counts: rows per tenant and state (what `callbackd status`, `status --watch`,
-- `run`'s progress table and the status page show) without deriving every row's state.
--
-- Before this, each of them ran `SELECT tenant_id, state, count(*) FROM sync_status GROUP BY
-- 1, 2`: a join of desired_callbacks, sub_merchant_state and pending_work over every row. With
-- a million rows that is seconds of I/O per count, however few rows changed.
--
-- Why not counters that triggers add to and subtract from: a row's state is derived from three
-- tables that operators (desired_callbacks) and every instance (sub_merchant_state,
-- pending_work) write concurrently. A trigger on one of them sees the other two as of its own
-- snapshot, so two concurrent writers of one sub-merchant would each move it out of a state it
-- was no longer in, and the counts would drift for good. Keeping them exact that way needs a
-- row lock per sub-merchant shared by all three writers (an operator's open transaction would
-- then stall the daemon's records) and a hot counter row per tenant and state (every record of
-- a tenant would queue on it).
--
-- So the writers only say WHICH rows may have changed, and the state is recomputed from the
-- truth:
--   row_state_changes   a statement trigger on each of the three tables appends the mchids
--                       whose state-deciding columns a statement changed. Append-only, no
--                       unique key: a writer never waits for another writer here.
--   row_states          the state each desired row was last counted in (before its tenant's
--                       pause, which applies to all of a tenant's rows at once).
--   row_state_totals    the count per tenant and state of row_states.
-- fold_row_state_changes() takes the oldest entries of row_state_changes, recomputes those
-- rows' states from the three tables, and moves them in row_states and row_state_totals. The
-- daemon calls it every few seconds (app/operations.cpp). It recomputes rather than applies
-- differences, so folding a row twice, or a row whose change it sees from a later snapshot,
-- is harmless. One folder at a time (an advisory lock); the others skip their turn.
--
-- row_state_counts() reads the totals and corrects them for the rows not folded yet,
-- recomputing those few: exact as of the reader's snapshot, read-only, and its work grows with
-- the rows changed in the last seconds, not with the rows there are. Proof of exactness, for
-- the reader at snapshot S: a row whose change entry is still visible at S is recomputed at S.
-- Any other row's every committed change had its entry deleted by a fold that committed before
-- S, and that fold recomputed the row from a snapshot that already held the change (the entry
-- and the change commit together); a later change would have a later, visible entry.
--
-- The derivation itself is written once: callbackd.row_state_rule and
-- callbackd.shown_row_state below, used by sync_status, the fold and the counts alike.

-- ---------------------------------------------------------------------------------------
-- A desired row's state before its tenant's pause: its change held by the change budget
-- (0008), no state recorded for its current desired revision (pending), else the recorded
-- state. The planner inlines SQL functions this simple (no call per row) only if they carry
-- no SET clause, so these two have no fixed search_path; they name no relation, so none is
-- needed.
CREATE FUNCTION callbackd.row_state_rule(held boolean, recorded_revision bigint, desired_revision bigint,
                                         recorded_state text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
  WHEN held THEN 'held'
  WHEN recorded_revision IS NULL OR recorded_revision < desired_revision THEN 'pending'
  ELSE recorded_state
END;

-- A paused tenant (by its mode or by the daemon) wins over everything: nothing of it moves.
CREATE FUNCTION callbackd.shown_row_state(tenant_mode text, tenant_paused_reason text, row_state text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN tenant_mode = 'paused' OR tenant_paused_reason IS NOT NULL THEN 'paused' ELSE row_state END;

-- Every desired row with its state before the tenant's pause. Filtered by mchid, it reads
-- one row of each table by primary key.
CREATE VIEW callbackd.desired_row_states AS
SELECT d.mchid, d.tenant_id, callbackd.row_state_rule(w.held_at IS NOT NULL, s.revision, d.revision, s.state) AS state
FROM callbackd.desired_callbacks d
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = d.mchid
LEFT JOIN callbackd.pending_work w ON w.mchid = d.mchid;

-- sync_status, unchanged in its columns and values, now from the same two rules.
CREATE OR REPLACE VIEW callbackd.sync_status AS
SELECT
  d.mchid,
  d.tenant_id,
  callbackd.shown_row_state(t.mode, ts.paused_reason,
                            callbackd.row_state_rule(w.held_at IS NOT NULL, s.revision, d.revision, s.state)) AS state,
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
  w.held_at,
  s.live_notify_url,
  s.live_read_at
FROM callbackd.desired_callbacks d
JOIN callbackd.tenants t ON t.tenant_id = d.tenant_id
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = d.tenant_id
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = d.mchid
LEFT JOIN callbackd.pending_work w ON w.mchid = d.mchid;

-- ---------------------------------------------------------------------------------------
CREATE TABLE callbackd.row_state_changes (
  id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- folded oldest first
  mchid text NOT NULL
);

-- A queue: appended to and emptied all the time. Vacuumed after a fixed number of dead
-- entries rather than a fraction of a table that is nearly always empty, so that the readers'
-- "how many are unfolded" never walks a long run of dead ones.
ALTER TABLE callbackd.row_state_changes SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);

CREATE TABLE callbackd.row_states (
  mchid     text PRIMARY KEY,
  tenant_id text NOT NULL,
  state     text NOT NULL
);

CREATE TABLE callbackd.row_state_totals (
  tenant_id text NOT NULL,
  state     text NOT NULL,
  n         bigint NOT NULL,
  PRIMARY KEY (tenant_id, state)
);

-- ---------------------------------------------------------------------------------------
-- The change triggers. Statement-level with transition tables: one INSERT per statement, so a
-- bulk load of a million rows appends its mchids in one go. PostgreSQL allows transition
-- tables only on single-event triggers, hence three triggers per table on one function that
-- branches on TG_OP (PL/pgSQL plans a statement when it first runs it, so a branch naming a
-- transition table its trigger lacks is never planned). An UPDATE appends only the rows whose
-- state-deciding columns changed (EXCEPT over both directions also catches a changed mchid):
-- the daemon's many updates of attempts, due times and live reads append nothing.
-- SECURITY DEFINER as the schema owner, like the enqueue trigger (0004): writers need no
-- privilege on the bookkeeping tables.

-- Every UPDATE of a desired row draws a new revision (desired_callbacks_touch), so every row
-- an UPDATE touches may have changed state.
CREATE FUNCTION callbackd.desired_callbacks_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO callbackd.row_state_changes (mchid) SELECT mchid FROM new_rows;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO callbackd.row_state_changes (mchid) SELECT mchid FROM old_rows;
  ELSE
    INSERT INTO callbackd.row_state_changes (mchid) SELECT mchid FROM new_rows UNION SELECT mchid FROM old_rows;
  END IF;
  RETURN NULL;
END;
$$;

-- The state-deciding columns: the recorded revision and state.
CREATE FUNCTION callbackd.sub_merchant_state_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO callbackd.row_state_changes (mchid) SELECT mchid FROM new_rows;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO callbackd.row_state_changes (mchid) SELECT mchid FROM old_rows;
  ELSE
    INSERT INTO callbackd.row_state_changes (mchid)
    SELECT mchid FROM (SELECT mchid, revision, state FROM new_rows EXCEPT SELECT mchid, revision, state FROM old_rows) n
    UNION
    SELECT mchid FROM (SELECT mchid, revision, state FROM old_rows EXCEPT SELECT mchid, revision, state FROM new_rows) o;
  END IF;
  RETURN NULL;
END;
$$;

-- The state-deciding column: whether the entry is held. An entry that is not held decides
-- nothing (the row is pending or not by its revisions alone).
CREATE FUNCTION callbackd.pending_work_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO callbackd.row_state_changes (mchid) SELECT mchid FROM new_rows WHERE held_at IS NOT NULL;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO callbackd.row_state_changes (mchid) SELECT mchid FROM old_rows WHERE held_at IS NOT NULL;
  ELSE
    INSERT INTO callbackd.row_state_changes (mchid)
    SELECT mchid FROM (SELECT mchid, held_at IS NOT NULL FROM new_rows EXCEPT SELECT mchid, held_at IS NOT NULL FROM old_rows) n
    UNION
    SELECT mchid FROM (SELECT mchid, held_at IS NOT NULL FROM old_rows EXCEPT SELECT mchid, held_at IS NOT NULL FROM new_rows) o;
  END IF;
  RETURN NULL;
END;
$$;

-- Every row, to be recounted: after a TRUNCATE (which has no transition table), or by the
-- schema owner after anything that bypassed the triggers (a restore with triggers disabled,
-- session_replication_role = replica). Rows counted but gone, and rows there but not counted.
CREATE FUNCTION callbackd.recount_row_states() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  marked bigint;
BEGIN
  INSERT INTO callbackd.row_state_changes (mchid)
  SELECT mchid FROM callbackd.row_states UNION SELECT mchid FROM callbackd.desired_callbacks;
  GET DIAGNOSTICS marked = ROW_COUNT;
  RETURN marked;
END;
$$;
REVOKE EXECUTE ON FUNCTION callbackd.recount_row_states() FROM PUBLIC;

CREATE FUNCTION callbackd.truncated_recount() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM callbackd.recount_row_states();
  RETURN NULL;
END;
$$;

-- On each of the three tables: its change function for INSERT, UPDATE and DELETE, and the
-- recount for TRUNCATE (named <table>_inserted, _updated, _deleted, _truncated).
DO $triggers$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['desired_callbacks', 'sub_merchant_state', 'pending_work'] LOOP
    EXECUTE format('CREATE TRIGGER %1$I AFTER INSERT ON callbackd.%2$I REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION callbackd.%3$I()', t || '_inserted', t, t || '_changes');
    EXECUTE format('CREATE TRIGGER %1$I AFTER UPDATE ON callbackd.%2$I REFERENCING OLD TABLE AS old_rows '
                   'NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION callbackd.%3$I()',
                   t || '_updated', t, t || '_changes');
    EXECUTE format('CREATE TRIGGER %1$I AFTER DELETE ON callbackd.%2$I REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION callbackd.%3$I()', t || '_deleted', t, t || '_changes');
    EXECUTE format('CREATE TRIGGER %1$I AFTER TRUNCATE ON callbackd.%2$I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION callbackd.truncated_recount()', t || '_truncated', t);
  END LOOP;
END
$triggers$;

-- ---------------------------------------------------------------------------------------
-- Folds at most max_rows of the oldest change entries; returns how many it took (0 when
-- another session is folding: it will take them). The recompute reads each row by primary
-- key: the LATERAL subquery with OFFSET 0 is not flattened into a join the planner might run
-- as a scan of desired_callbacks when its row estimate for the entries is stale.
CREATE FUNCTION callbackd.fold_row_state_changes(max_rows integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  taken integer;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('callbackd.row_state_counts'), 0) THEN
    RETURN 0;
  END IF;
  WITH taken_entries AS (
    -- An id range, read from the primary key; `id IN (SELECT ... LIMIT)` would be planned as
    -- a hash join over every entry. Entries with lower ids that commit meanwhile are simply
    -- taken too: this statement's snapshot sees them and their changes alike.
    DELETE FROM callbackd.row_state_changes
    WHERE id <= (SELECT max(b.id) FROM (SELECT id FROM callbackd.row_state_changes ORDER BY id LIMIT max_rows) b)
    RETURNING mchid
  ), touched AS (
    SELECT DISTINCT mchid FROM taken_entries
  ), counted AS (
    SELECT t.mchid, r.tenant_id AS was_tenant, r.state AS was_state, n.tenant_id, n.state
    FROM touched t
    LEFT JOIN callbackd.row_states r ON r.mchid = t.mchid
    LEFT JOIN LATERAL (SELECT x.tenant_id, x.state FROM callbackd.desired_row_states x
                       WHERE x.mchid = t.mchid OFFSET 0) n ON true
  ), gone AS (
    DELETE FROM callbackd.row_states r USING counted c
    WHERE r.mchid = c.mchid AND c.state IS NULL
  ), kept AS (
    INSERT INTO callbackd.row_states AS r (mchid, tenant_id, state)
    SELECT mchid, tenant_id, state FROM counted WHERE state IS NOT NULL
    ON CONFLICT (mchid) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, state = EXCLUDED.state
    WHERE (r.tenant_id, r.state) IS DISTINCT FROM (EXCLUDED.tenant_id, EXCLUDED.state)
  ), moves AS (
    SELECT tenant_id, state, sum(n) AS n
    FROM (SELECT was_tenant AS tenant_id, was_state AS state, -1 AS n FROM counted WHERE was_state IS NOT NULL
          UNION ALL
          SELECT tenant_id, state, 1 FROM counted WHERE state IS NOT NULL) m
    GROUP BY tenant_id, state
    HAVING sum(n) <> 0
  ), moved AS (
    INSERT INTO callbackd.row_state_totals AS c (tenant_id, state, n)
    SELECT tenant_id, state, n FROM moves
    ON CONFLICT (tenant_id, state) DO UPDATE SET n = c.n + EXCLUDED.n
  )
  SELECT count(*) INTO taken FROM taken_entries;
  -- A tenant and state with no row left: the table stays as small as the states in use.
  DELETE FROM callbackd.row_state_totals WHERE n = 0;
  RETURN taken;
END;
$$;
REVOKE EXECUTE ON FUNCTION callbackd.fold_row_state_changes(integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Rows per tenant and state as sync_status shows them, for every tenant or the one named, exact
-- as of the caller's snapshot (STABLE: every statement here reads that one snapshot): the
-- totals, corrected by the rows whose changes are not folded yet. Bounded by the tenants, their
-- states and the unfolded changes. Recomputing one unfolded row costs about as much as counting
-- ten or twenty rows of sync_status, so past 10,000 of them (a bulk load the daemon is still
-- folding, or no daemon running) this counts sync_status instead, as before 0014: never slower
-- than that. SECURITY DEFINER: callers need no privilege on the bookkeeping tables; it returns
-- counts only.
CREATE FUNCTION callbackd.row_state_counts(tenant text DEFAULT NULL)
RETURNS TABLE (tenant_id text, state text, n bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM callbackd.row_state_changes OFFSET 10000) THEN
    RETURN QUERY
      SELECT s.tenant_id, s.state, count(*)
      FROM callbackd.sync_status s
      WHERE tenant IS NULL OR s.tenant_id = tenant
      GROUP BY s.tenant_id, s.state;
    RETURN;
  END IF;
  RETURN QUERY
    WITH unfolded AS MATERIALIZED (
      SELECT DISTINCT c.mchid FROM callbackd.row_state_changes c
    ), counts AS (
      SELECT o.tenant_id, o.state, o.n FROM callbackd.row_state_totals o
      UNION ALL
      SELECT r.tenant_id, r.state, -1 FROM unfolded u JOIN callbackd.row_states r ON r.mchid = u.mchid
      UNION ALL
      SELECT x.tenant_id, x.state, 1
      FROM unfolded u
      CROSS JOIN LATERAL (SELECT y.tenant_id, y.state FROM callbackd.desired_row_states y
                          WHERE y.mchid = u.mchid OFFSET 0) x
    )
    SELECT c.tenant_id, callbackd.shown_row_state(t.mode, ts.paused_reason, c.state), sum(c.n)::bigint
    FROM counts c
    JOIN callbackd.tenants t ON t.tenant_id = c.tenant_id
    LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = c.tenant_id
    WHERE tenant IS NULL OR c.tenant_id = tenant
    GROUP BY c.tenant_id, callbackd.shown_row_state(t.mode, ts.paused_reason, c.state)
    HAVING sum(c.n) <> 0;
END;
$$;
REVOKE EXECUTE ON FUNCTION callbackd.row_state_counts(text) FROM PUBLIC;

COMMENT ON FUNCTION callbackd.row_state_counts(text) IS
  'Rows per tenant and state: the numbers of SELECT tenant_id, state, count(*) FROM sync_status '
  'GROUP BY 1, 2, without reading every row (migrations/0014_row_state_counts.sql).';

-- ---------------------------------------------------------------------------------------
-- The rows there are now, counted once. The triggers above already exist, and they took
-- locks that keep writers out until this transaction commits, so nothing is missed or
-- counted twice.
INSERT INTO callbackd.row_states (mchid, tenant_id, state)
SELECT mchid, tenant_id, state FROM callbackd.desired_row_states;
INSERT INTO callbackd.row_state_totals (tenant_id, state, n)
SELECT tenant_id, state, count(*) FROM callbackd.row_states GROUP BY tenant_id, state;

-- Said here so that a later REVOKE cannot silently break a reader of either role (0010).
GRANT EXECUTE ON FUNCTION callbackd.row_state_rule(boolean, bigint, bigint, text),
                          callbackd.shown_row_state(text, text, text)
  TO callbackd_daemon, callbackd_operator;
GRANT EXECUTE ON FUNCTION callbackd.row_state_counts(text) TO callbackd_daemon, callbackd_operator;
GRANT EXECUTE ON FUNCTION callbackd.fold_row_state_changes(integer) TO callbackd_daemon;
