-- One heartbeat of instance $1 in one statement (autocommit: atomic on its own, one round trip).
-- $2 boot_id, $3 pid_namespace, $4 pid (0: unknown) of this instance (0005); $5 the lease in ms;
-- $6 a JSON array of the tenant ids whose leases it gives up; $7 whether to list the other
-- instances of this kernel boot and PID namespace (takeover candidates, 0005).
--
-- Every part reads the snapshot taken at the statement's start, and no part sees what a
-- sibling wrote. Hence:
--  - this instance is counted live as itself + 1: its own heartbeat (`beat`) is invisible to
--    `others`, and its row may be missing (first heartbeat) or stale (after a long stall);
--  - `renewed` skips the released tenants, and `acquired` skips every lease this instance
--    holds: a row changed by two parts of one statement is an error (ON CONFLICT) or
--    unpredictable. Its own lapsed leases are thus renewed, not acquired again (their fencing
--    token stays), as in the former transaction; a tenant it gives up is not taken back by the
--    same heartbeat (the former transaction could, when its share had grown meanwhile);
--  - how many to acquire comes from `renewed`'s RETURNING, not from re-reading the leases.
-- Two instances racing for one tenant stay safe: ON CONFLICT ... WHERE lapsed re-checks the
-- newest version of the lease row, so the loser's upsert matches nothing.
-- Instances silent for a day are forgotten here too, every time: a table of a few rows, so the
-- DELETE costs less than any condition for running it less often, and no round trip.
--
-- Rows, ordered by kind then id: one `counts` (n = live instances, m = tenants), a `renewed`
-- per lease renewed and an `acquired` per lease acquired (n = fencing token; recent_sends = the
-- ages in ms of the tenant's requests of the last 61 s, oldest first, as a JSON array; the
-- previous owner's, for the new owner's pacer), a `peer` per takeover candidate (n = pid).
WITH beat AS (
  INSERT INTO callbackd.instances (instance_id, boot_id, pid_namespace, pid)
  VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), NULLIF($4::integer, 0))
  ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()
), released AS (
  DELETE FROM callbackd.tenant_leases
  WHERE instance_id = $1 AND tenant_id IN (SELECT jsonb_array_elements_text($6::jsonb))
), renewed AS (
  UPDATE callbackd.tenant_leases SET lease_until = now() + $5::bigint * interval '1 millisecond'
  WHERE instance_id = $1 AND tenant_id NOT IN (SELECT jsonb_array_elements_text($6::jsonb))
  RETURNING tenant_id, fencing_token
), others AS (
  SELECT instance_id, boot_id, pid_namespace, pid FROM callbackd.instances
  WHERE instance_id <> $1 AND heartbeat_at > now() - $5::bigint * interval '1 millisecond'
), counts AS (
  SELECT (SELECT count(*) FROM others)::int + 1 AS live_instances,
         (SELECT count(*) FROM callbackd.tenants)::int AS tenants
), acquired AS (
  -- A free tenant has no lease or a lapsed one; up to the fair share, ceil(tenants / live),
  -- less what this instance renewed. LIMIT 0 reads no tenant at all.
  INSERT INTO callbackd.tenant_leases AS l (tenant_id, instance_id, lease_until)
  SELECT t.tenant_id, $1, now() + $5::bigint * interval '1 millisecond'
  FROM callbackd.tenants t
  LEFT JOIN callbackd.tenant_leases h ON h.tenant_id = t.tenant_id
  WHERE h.tenant_id IS NULL OR (h.lease_until < now() AND h.instance_id <> $1)
  ORDER BY t.tenant_id
  LIMIT (SELECT GREATEST(0, (tenants + live_instances - 1) / live_instances - (SELECT count(*) FROM renewed))
         FROM counts)
  ON CONFLICT (tenant_id) DO UPDATE
    SET instance_id = EXCLUDED.instance_id, lease_until = EXCLUDED.lease_until,
        fencing_token = nextval('callbackd.tenant_lease_seq'), acquired_at = now()
    WHERE l.lease_until < now()
  RETURNING tenant_id, fencing_token
), forgotten AS (
  DELETE FROM callbackd.instances WHERE heartbeat_at < now() - interval '1 day' AND instance_id <> $1
)
SELECT 'counts' AS kind, NULL::text AS id, live_instances::bigint AS n, tenants AS m, NULL::json AS recent_sends
FROM counts
UNION ALL
SELECT 'renewed', tenant_id, fencing_token, NULL, NULL FROM renewed
UNION ALL
SELECT 'acquired', a.tenant_id, a.fencing_token, NULL, s.ages
FROM acquired a
CROSS JOIN LATERAL (
  SELECT json_agg(ceil(extract(epoch FROM now() - g.created_at) * 1000)::bigint ORDER BY g.created_at) AS ages
  FROM callbackd.audit_log g
  WHERE g.tenant_id = a.tenant_id AND g.created_at > now() - interval '61 seconds' AND g.latency_ms IS NOT NULL
) s
UNION ALL
SELECT 'peer', instance_id, pid, NULL, NULL FROM others
WHERE $7::boolean AND boot_id = NULLIF($2, '') AND pid_namespace = NULLIF($3, '') AND pid IS NOT NULL
ORDER BY kind, id
