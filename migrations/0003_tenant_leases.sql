-- 0003_tenant_leases: several `callbackd run` instances on one database.
--
-- PostgreSQL is the coordination engine; there is no cluster protocol of our own. Each
-- instance heartbeats into callbackd.instances and holds leases on whole TENANTS: one tenant
-- is paced and sent by exactly one instance at a time, so its rate limit (a property of the
-- calling merchant) holds across instances with nothing shared but this table, and work
-- spreads by tenants (each live instance takes about tenants / live instances).
--
-- Takeover: an instance that dies stops renewing; its leases lapse after the lease time and
-- another instance acquires them (and may take over that tenant's row claims at once).
-- Fencing: an instance only sends for a tenant while its own clock says its last renewal is
-- fresh enough (it stops well before the lease could have lapsed), and every recorded result
-- is fenced by its row's claim token (0001/0002), so an instance that was paused or cut off
-- and comes back can never overwrite a newer result.

CREATE TABLE callbackd.instances (
  instance_id  text PRIMARY KEY,  -- host:pid:random, as written to claimed_by and audit_log.instance
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE callbackd.tenant_lease_seq AS bigint;

CREATE TABLE callbackd.tenant_leases (
  tenant_id     text PRIMARY KEY REFERENCES callbackd.tenants (tenant_id) ON DELETE CASCADE,
  instance_id   text NOT NULL,
  lease_until   timestamptz NOT NULL,
  -- New on every acquisition: tells an operator (and the audit) which tenure a send belonged to.
  fencing_token bigint NOT NULL DEFAULT nextval('callbackd.tenant_lease_seq'),
  acquired_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tenant_leases_instance ON callbackd.tenant_leases (instance_id);

COMMENT ON TABLE callbackd.tenant_leases IS
  'Which callbackd instance sends for which tenant (internal). Deleting a row makes the tenant '
  'free for the next instance heartbeat.';
