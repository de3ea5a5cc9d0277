-- 0002_reconcile_store: what the reconcile store (daemon/pg/reconcile_store.cpp) needs beyond
-- 0001: resync entries, a cheap "when does a held lease lapse", idempotent audit rows.

-- A full resync (reconciler.resync_interval) queues rows that are in sync, which the send diff
-- alone would never send again; the flag tells the daemon (and `plan`) to send them anyway.
-- A real change clears it (the enqueue trigger below): the row is then sent for its change.
ALTER TABLE callbackd.pending_work ADD COLUMN resync boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION callbackd.desired_callbacks_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
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
        resync      = false;
  PERFORM pg_notify('callbackd_desired', NEW.tenant_id);
  RETURN NULL;
END;
$$;

-- claim_due() reports when a lease held by another instance lapses. Only claimed entries are
-- in this index (at most the in-flight requests of all instances), so the lookup never walks
-- a tenant's backlog the way a scan of pending_work_tenant_due would.
CREATE INDEX pending_work_tenant_lease ON callbackd.pending_work (tenant_id, lease_until)
  WHERE claim_token IS NOT NULL;

-- The claim under which an attempt was made. One claim is one attempt, so the token identifies
-- the audit row: a record() repeated after a connection was lost mid-commit (outcome unknown to
-- the daemon) inserts nothing twice. NULL for tenant-wide events and rows written by operators.
ALTER TABLE callbackd.audit_log ADD COLUMN claim_token bigint NULL;
CREATE UNIQUE INDEX audit_log_claim_token ON callbackd.audit_log (claim_token) WHERE claim_token IS NOT NULL;
