-- 0007_instance_leases: one lease per instance, not one per tenant row.
--
-- Until now every heartbeat (every 2 s) renewed one callbackd.tenant_leases row per tenant the
-- instance held: 500 row versions a second with 1,000 tenants, 5,000 with 10,000, for nothing
-- but "still here" (docs/benchmarks.md, issue 14: most of PostgreSQL's idle cost). The lease is
-- now the instance's: callbackd.instances.lease_until, renewed by one row update per heartbeat,
-- covers every tenant_leases row that names the instance. A tenant's row changes only when it
-- changes hands.
--
-- Taking a tenant over from an instance whose lease lapsed must not race with that instance's
-- late renewal (it renews its own row, not the tenant's). So the taker first bumps the owner's
-- `epoch` under the owner row's lock, re-checking there that the lease lapsed
-- (daemon/pg/sql/heartbeat.sql, `fenced`); an owner whose renewal answers with an epoch other
-- than the one it knew learns that tenants may have been taken from it meanwhile and sends for
-- none until its next heartbeat, whose snapshot shows what it still holds. The row lock orders
-- the two: either the renewal came first and the taker's re-check sees a live lease (nothing
-- taken), or the taker committed first and the renewal returns the bumped epoch.
--
-- Binaries from before this migration renew tenant_leases.lease_until, which is dropped here:
-- their heartbeat fails, so they stop sending when their leases could lapse, as after any
-- database outage, until they are restarted with this binary ("install, migrate, restart",
-- docs/install.md). Their leases carry over as their instance's lease.

ALTER TABLE callbackd.instances
  ADD COLUMN lease_until timestamptz NULL,
  -- Changes (from callbackd.tenant_lease_seq, so never repeats, even for a forgotten instance
  -- that comes back) whenever another instance fences this one to take its tenants.
  ADD COLUMN epoch bigint NOT NULL DEFAULT nextval('callbackd.tenant_lease_seq');

UPDATE callbackd.instances i
SET lease_until = (SELECT max(l.lease_until) FROM callbackd.tenant_leases l WHERE l.instance_id = i.instance_id);

-- A lease naming an instance that has no row (forgotten, or removed by hand) had lapsed
-- before already or is treated as lapsed now; give it a row so the rule is one: a tenant's
-- lease ends with its instance's.
INSERT INTO callbackd.instances (instance_id, heartbeat_at, lease_until)
SELECT l.instance_id, '-infinity', max(l.lease_until) FROM callbackd.tenant_leases l
WHERE NOT EXISTS (SELECT 1 FROM callbackd.instances i WHERE i.instance_id = l.instance_id)
GROUP BY l.instance_id;

ALTER TABLE callbackd.tenant_leases DROP COLUMN lease_until;

COMMENT ON COLUMN callbackd.instances.lease_until IS
  'Until when this instance holds every tenant in callbackd.tenant_leases that names it (renewed by '
  'each heartbeat; NULL or past: its tenants are free for the other instances).';
COMMENT ON COLUMN callbackd.instances.epoch IS
  'Changed by another instance before it takes tenants of this one over (its lease had lapsed); '
  'tells the instance, at its next renewal, that what it held may have changed.';
