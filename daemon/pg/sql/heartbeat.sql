-- One heartbeat of instance $1 in one statement (autocommit: atomic on its own, one round trip).
-- $2 boot_id, $3 pid_namespace, $4 pid (0: unknown) of this instance (0005); $5 the lease in ms;
-- $6 a JSON array of the tenant ids whose leases it gives up; $7 whether to list the other
-- instances of this kernel boot and PID namespace (takeover candidates, 0005).
--
-- The lease is the instance's (0007): `beat` renews callbackd.instances.lease_until, which
-- covers every tenant_leases row naming this instance, so an idle heartbeat writes one row
-- whatever the number of tenants. Tenant rows change only when a tenant changes hands.
--
-- Every part reads the snapshot taken at the statement's start, and no part sees what a
-- sibling wrote. Hence:
--  - this instance is counted live as itself + 1: its own heartbeat (`beat`) is invisible to
--    `others`, and its row may be missing (first heartbeat) or stale (after a long stall);
--  - `held` skips the released tenants, and `candidates` skips every lease this instance holds:
--    a row changed by two parts of one statement is an error or unpredictable. Its own leases
--    after a stall are thus still its own (their fencing token stays) unless another instance
--    took them, which `epoch` tells (below); a tenant it gives up is not taken back by the same
--    heartbeat;
--  - how many to acquire comes from `held`, not from re-reading the leases;
--  - `forgotten` skips instances named by any lease, which `fenced` may update.
-- Taking a tenant from another instance (its lease lapsed in this snapshot) goes in two steps
-- that re-check the newest row versions under their row locks: `fenced` changes the owner's
-- epoch only if its lease is still lapsed (an owner missing from instances gets a lapsed row,
-- so that its own late heartbeat conflicts with it), and `taken` moves only leases of fenced
-- owners whose fencing token is still the one seen. An owner renewing at the same moment
-- either renews first (the re-check sees its lease: nothing is taken) or waits for the taker's
-- commit and gets the new epoch back, so it sends for nothing until its next heartbeat shows
-- what it still holds (engine/lease_keeper.cpp). Two instances taking the same tenant: the
-- second's `taken` finds a new fencing token, and its `inserted` conflicts, so it gets nothing.
-- Instances silent for a day are forgotten here too, every time: a table of a few rows, so the
-- DELETE costs less than any condition for running it less often, and no round trip.
--
-- Rows, ordered by kind then id: one `counts` (n = live instances, m = tenants, epoch = this
-- instance's epoch after the renewal), a `renewed` per lease still held and an `acquired` per
-- lease acquired (n = fencing token; recent_sends = the ages in ms of the tenant's requests of
-- the last 61 s, oldest first, as a JSON array; the previous owner's, for the new owner's
-- pacer), a `peer` per takeover candidate (n = pid).
WITH beat AS (
  INSERT INTO callbackd.instances (instance_id, boot_id, pid_namespace, pid, lease_until)
  VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), NULLIF($4::integer, 0), now() + $5::bigint * interval '1 millisecond')
  ON CONFLICT (instance_id) DO UPDATE
    SET heartbeat_at = now(), lease_until = EXCLUDED.lease_until, boot_id = EXCLUDED.boot_id,
        pid_namespace = EXCLUDED.pid_namespace, pid = EXCLUDED.pid
  RETURNING epoch
), released AS (
  DELETE FROM callbackd.tenant_leases
  WHERE instance_id = $1 AND tenant_id IN (SELECT jsonb_array_elements_text($6::jsonb))
), held AS (
  SELECT tenant_id, fencing_token FROM callbackd.tenant_leases
  WHERE instance_id = $1 AND tenant_id NOT IN (SELECT jsonb_array_elements_text($6::jsonb))
), others AS (
  SELECT instance_id, boot_id, pid_namespace, pid FROM callbackd.instances
  WHERE instance_id <> $1 AND heartbeat_at > now() - $5::bigint * interval '1 millisecond'
), counts AS (
  SELECT (SELECT count(*) FROM others)::int + 1 AS live_instances,
         (SELECT count(*) FROM callbackd.tenants)::int AS tenants
), candidates AS (
  -- A free tenant has no lease, or one whose instance's lease lapsed (or whose instance has no
  -- row); up to the fair share, ceil(tenants / live), less what this instance holds. LIMIT 0
  -- reads no tenant at all.
  SELECT t.tenant_id, h.instance_id AS owner, h.fencing_token AS token
  FROM callbackd.tenants t
  LEFT JOIN callbackd.tenant_leases h ON h.tenant_id = t.tenant_id
  LEFT JOIN callbackd.instances o ON o.instance_id = h.instance_id
  WHERE h.tenant_id IS NULL OR (h.instance_id <> $1 AND (o.lease_until IS NULL OR o.lease_until < now()))
  ORDER BY t.tenant_id
  LIMIT (SELECT GREATEST(0, (tenants + live_instances - 1) / live_instances - (SELECT count(*) FROM held))
         FROM counts)
), fenced AS (
  INSERT INTO callbackd.instances AS o (instance_id, heartbeat_at, lease_until)
  SELECT DISTINCT owner, '-infinity'::timestamptz, NULL::timestamptz FROM candidates WHERE owner IS NOT NULL
  ON CONFLICT (instance_id) DO UPDATE SET epoch = nextval('callbackd.tenant_lease_seq')
    WHERE o.lease_until IS NULL OR o.lease_until < now()
  RETURNING o.instance_id
), taken AS (
  UPDATE callbackd.tenant_leases l
  SET instance_id = $1, fencing_token = nextval('callbackd.tenant_lease_seq'), acquired_at = now()
  FROM candidates c JOIN fenced f ON f.instance_id = c.owner
  WHERE l.tenant_id = c.tenant_id AND l.instance_id = c.owner AND l.fencing_token = c.token
  RETURNING l.tenant_id, l.fencing_token
), inserted AS (
  INSERT INTO callbackd.tenant_leases (tenant_id, instance_id)
  SELECT tenant_id, $1 FROM candidates WHERE owner IS NULL
  ON CONFLICT (tenant_id) DO NOTHING
  RETURNING tenant_id, fencing_token
), acquired AS (
  SELECT tenant_id, fencing_token FROM taken
  UNION ALL
  SELECT tenant_id, fencing_token FROM inserted
), forgotten AS (
  DELETE FROM callbackd.instances i
  WHERE i.heartbeat_at < now() - interval '1 day' AND i.instance_id <> $1
    AND (i.lease_until IS NULL OR i.lease_until < now())
    AND NOT EXISTS (SELECT 1 FROM callbackd.tenant_leases l WHERE l.instance_id = i.instance_id)
)
SELECT 'counts' AS kind, NULL::text AS id, live_instances::bigint AS n, tenants AS m, NULL::json AS recent_sends,
       (SELECT epoch FROM beat) AS epoch
FROM counts
UNION ALL
SELECT 'renewed', tenant_id, fencing_token, NULL, NULL, NULL FROM held
UNION ALL
SELECT 'acquired', a.tenant_id, a.fencing_token, NULL, s.ages, NULL
FROM acquired a
CROSS JOIN LATERAL (
  SELECT json_agg(ceil(extract(epoch FROM now() - g.created_at) * 1000)::bigint ORDER BY g.created_at) AS ages
  FROM callbackd.audit_log g
  WHERE g.tenant_id = a.tenant_id AND g.created_at > now() - interval '61 seconds' AND g.latency_ms IS NOT NULL
) s
UNION ALL
SELECT 'peer', instance_id, pid, NULL, NULL, NULL FROM others
WHERE $7::boolean AND boot_id = NULLIF($2, '') AND pid_namespace = NULLIF($3, '') AND pid IS NOT NULL
ORDER BY kind, id
