-- One heartbeat of instance $1 in one statement (autocommit: atomic on its own, one round trip).
-- $2 boot_id, $3 pid_namespace, $4 pid (0: unknown) of this instance (0005); $5 the lease in ms;
-- $6 a JSON array of the [tenant_id, share] pairs whose leases it gives up; $8 how many
-- shares it expects to hold after that (-1: list them anyway); $7 whether to list the other
-- instances of this kernel boot and PID namespace (takeover candidates, 0005).
--
-- A lease is on one share of a tenant's rate (0013, rate shares): everything below that says
-- "tenant" is about one (tenant_id, share); the fair share counts shares.
-- The lease is the instance's (0007): `beat` renews callbackd.instances.lease_until, which
-- covers every tenant_leases row naming this instance, so an idle heartbeat writes one row
-- whatever the number of tenants. Tenant rows change only when a tenant changes hands.
--
-- Every part reads the snapshot taken at the statement's start, and no part sees what a
-- sibling wrote. Hence:
--  - this instance is counted live as itself + 1: its own heartbeat (`beat`) is invisible to
--    `others`, and its row may be missing (first heartbeat) or stale (after a long stall);
--  - `held_count` and `renewed` skip the released shares, and `candidates` skips every lease this instance holds:
--    a row changed by two parts of one statement is an error or unpredictable. Its own leases
--    after a stall are thus still its own (their fencing token stays) unless another instance
--    took them, which `epoch` tells (below); a tenant it gives up is not taken back by the same
--    heartbeat;
--  - how many to acquire comes from `held_count`, not from re-reading the leases;
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
-- Rows, ordered by kind, id, share: one `counts` (n = live instances, m = shares of all
-- tenants, rate = the shares this instance still holds, before acquiring any, epoch = this
-- instance's epoch after the renewal), a `renewed` per tenant with
-- shares still held (m = which, as a bit mask; rate = the tenant's rate_per_minute; n = the
-- lowest fencing token) and an `acquired` per share acquired (n = fencing token, share, rate = what
-- the share may send a minute now, previous = the instance it was taken from (NULL: it was
-- free), recent_sends = [audit_log.id, age in ms] of that instance's requests for the tenant
-- in the last 61 s, or for a free share every other instance's, oldest first, as a JSON
-- array: for the new holder's pacer, which counts each id once however many shares it takes
-- over how many heartbeats), a `peer` per takeover candidate (n = pid).
-- A share beyond the tenant's count (its rate_per_minute was lowered) is given up by the lease
-- keeper at its next heartbeat (ownership_policy.h: it has no rate).
WITH beat AS (
  INSERT INTO callbackd.instances (instance_id, boot_id, pid_namespace, pid, lease_until)
  VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), NULLIF($4::integer, 0), now() + $5::bigint * interval '1 millisecond')
  ON CONFLICT (instance_id) DO UPDATE
    SET heartbeat_at = now(), lease_until = EXCLUDED.lease_until, boot_id = EXCLUDED.boot_id,
        pid_namespace = EXCLUDED.pid_namespace, pid = EXCLUDED.pid
  RETURNING epoch
), given_up AS (
  SELECT e->>0 AS tenant_id, (e->>1)::smallint AS share FROM jsonb_array_elements($6::jsonb) e
), released AS (
  DELETE FROM callbackd.tenant_leases l
  USING given_up g
  WHERE l.instance_id = $1 AND l.tenant_id = g.tenant_id AND l.share = g.share
), held_count AS (
  -- The shares this instance holds and keeps: a count over its rows, without reading them out
  -- (8,000 shares of 1,000 tenants in an idle heartbeat). A share beyond a lowered count is
  -- still held; the lease keeper finds it has no rate and gives it up.
  SELECT (SELECT count(*) FROM callbackd.tenant_leases WHERE instance_id = $1)::int
         - (SELECT count(*) FROM callbackd.tenant_leases l JOIN given_up g ON g.tenant_id = l.tenant_id
            AND g.share = l.share WHERE l.instance_id = $1)::int AS n
), others AS (
  SELECT instance_id, boot_id, pid_namespace, pid FROM callbackd.instances
  WHERE instance_id <> $1 AND heartbeat_at > now() - $5::bigint * interval '1 millisecond'
), counts AS (
  SELECT (SELECT count(*) FROM others)::int + 1 AS live_instances,
         (SELECT coalesce(sum(callbackd.rate_shares(rate_per_minute)), 0) FROM callbackd.tenants)::int AS shares
), candidates AS (
  -- A free share has no lease, or one whose instance's lease lapsed (or whose instance has no
  -- row); up to the fair share, ceil(shares / live), less what this instance holds. LIMIT 0
  -- reads no tenant at all. Share 0 of every tenant first, then share 1 of every tenant, and so
  -- on, so that the live instances each hold shares of every tenant big enough to have them.
  SELECT t.tenant_id, s.share, t.rate_per_minute, h.instance_id AS owner, h.fencing_token AS token
  FROM callbackd.tenants t
  CROSS JOIN LATERAL generate_series(0, callbackd.rate_shares(t.rate_per_minute) - 1) AS s(share)
  LEFT JOIN callbackd.tenant_leases h ON h.tenant_id = t.tenant_id AND h.share = s.share
  LEFT JOIN callbackd.instances o ON o.instance_id = h.instance_id
  WHERE h.tenant_id IS NULL OR (h.instance_id <> $1 AND (o.lease_until IS NULL OR o.lease_until < now()))
  ORDER BY s.share, t.tenant_id
  LIMIT (SELECT GREATEST(0, (shares + live_instances - 1) / live_instances - (SELECT n FROM held_count))
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
  WHERE l.tenant_id = c.tenant_id AND l.share = c.share AND l.instance_id = c.owner AND l.fencing_token = c.token
  RETURNING l.tenant_id, l.share, l.fencing_token, c.rate_per_minute, c.owner AS previous
), inserted AS (
  INSERT INTO callbackd.tenant_leases (tenant_id, share, instance_id)
  SELECT tenant_id, share, $1 FROM candidates WHERE owner IS NULL
  ON CONFLICT (tenant_id, share) DO NOTHING
  RETURNING tenant_id, share, fencing_token
), acquired AS (
  SELECT tenant_id, share, fencing_token, rate_per_minute, previous FROM taken
  UNION ALL
  SELECT i.tenant_id, i.share, i.fencing_token, c.rate_per_minute, NULL::text
  FROM inserted i JOIN candidates c ON c.tenant_id = i.tenant_id AND c.share = i.share
), forgotten AS (
  DELETE FROM callbackd.instances i
  WHERE i.heartbeat_at < now() - interval '1 day' AND i.instance_id <> $1
    AND (i.lease_until IS NULL OR i.lease_until < now())
    AND NOT EXISTS (SELECT 1 FROM callbackd.tenant_leases l WHERE l.instance_id = i.instance_id)
)
SELECT 'counts' AS kind, NULL::text AS id, NULL::smallint AS share, live_instances::bigint AS n, shares AS m,
       (SELECT n FROM held_count) AS rate, NULL::text AS previous, NULL::json AS recent_sends, (SELECT epoch FROM beat) AS epoch
FROM counts
UNION ALL
-- One row per tenant, not per share: m = the shares held as a bit mask, rate = the tenant's
-- rate_per_minute. Only when the number of shares held is not the $8 the caller expects (-1:
-- always): an idle heartbeat of an instance holding 8,000 shares then reads their index
-- entries to count them and returns nothing. The count is a sound test because only this
-- instance adds leases naming it; others only take them away (after our lease lapsed: the
-- epoch says so too), as do an operator's DELETE and a tenant's removal.
SELECT 'renewed', h.tenant_id, NULL, h.token, h.mask, t.rate_per_minute, NULL, NULL, NULL
FROM (SELECT l.tenant_id, bit_or(1 << l.share)::integer AS mask, min(l.fencing_token) AS token
      FROM callbackd.tenant_leases l
      WHERE l.instance_id = $1
        AND NOT EXISTS (SELECT 1 FROM given_up g WHERE g.tenant_id = l.tenant_id AND g.share = l.share)
      GROUP BY l.tenant_id) h
JOIN callbackd.tenants t ON t.tenant_id = h.tenant_id
WHERE (SELECT n FROM held_count) <> $8::integer
UNION ALL
SELECT 'acquired', a.tenant_id, a.share, a.fencing_token, NULL, callbackd.share_rate(a.rate_per_minute, a.share),
       a.previous, s.ages, NULL
FROM acquired a
CROSS JOIN LATERAL (
  -- Taken from an instance whose lease lapsed: its requests, which this share carried (or
  -- others of its shares: counting them too only slows the new holder down). A free share:
  -- every other instance's, since which of them carried it before is not known.
  SELECT json_agg(json_build_array(g.id, ceil(extract(epoch FROM now() - g.created_at) * 1000)::bigint)
                  ORDER BY g.created_at) AS ages
  FROM callbackd.audit_log g
  WHERE g.tenant_id = a.tenant_id AND g.created_at > now() - interval '61 seconds' AND g.latency_ms IS NOT NULL
    AND (CASE WHEN a.previous IS NULL THEN g.instance IS DISTINCT FROM $1 ELSE g.instance = a.previous END)
) s
UNION ALL
SELECT 'peer', instance_id, NULL, pid, NULL, NULL, NULL, NULL, NULL FROM others
WHERE $7::boolean AND boot_id = NULLIF($2, '') AND pid_namespace = NULLIF($3, '') AND pid IS NOT NULL
ORDER BY kind, id, share
