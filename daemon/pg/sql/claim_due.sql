-- One statement for every tenant of a poll ($1: a JSON array of {ord, tenant_id, claim_limit};
-- $2 the instance; $3 the lease in ms), so an idle poll over 1,000 tenants is one round trip
-- and one statement, not 1,000. Per tenant, a LATERAL picks its due entries with its own LIMIT
-- and FOR UPDATE SKIP LOCKED, exactly as the former one-tenant claim did.
-- One entry per claimed row; nextval() runs once per updated row, so every entry carries its
-- own token and fencing is per entry. The UPDATE re-checks that the desired row it joins is
-- at least the queued revision: SKIP LOCKED re-reads a just-changed queue entry at its newest
-- version while the join reads desired_callbacks as of the statement's start, so without the
-- check an entry could be claimed with older desired values. Such an entry is simply left for
-- the next claim.
-- next_due_in_ms looks at two index ranges per tenant, never the tenant's backlog: the first
-- unclaimed entry due later (pending_work_tenant_due) and the first lease held by someone else
-- that lapses (pending_work_tenant_lease, claimed entries only). Both read the snapshot before
-- this claim, so this claim's own entries are not counted.
-- Every request yields at least one row (its `later` row), ordered by request then due_at:
-- the caller groups rows back by `ord`. Every row also carries its tenant's allowed hosts and
-- change budget (0008), which the caller judges the claimed rows with, and whether it adopts
-- live values (0011: rows never applied are read back before their first POST).
WITH req AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(ord integer, tenant_id text, claim_limit integer)
), due AS (
  SELECT p.mchid FROM req
  CROSS JOIN LATERAL (
    SELECT w.mchid FROM callbackd.pending_work w
    WHERE w.tenant_id = req.tenant_id AND w.due_at <= now()
      AND (w.claim_token IS NULL OR w.lease_until < now()
           -- A claim of an instance that holds no share of the tenant any more, seen by one
           -- that holds one: that instance stopped sending for it before its lease could lapse
           -- (or gave its last share up once its requests were done), so its row claims are
           -- taken over at once. Claims of an instance still holding a share (0013: several
           -- instances send one tenant) are its own until they lapse.
           OR (w.claimed_by <> $2
               AND EXISTS (SELECT 1 FROM callbackd.tenant_leases l
                           WHERE l.tenant_id = req.tenant_id AND l.instance_id = $2)
               AND NOT EXISTS (SELECT 1 FROM callbackd.tenant_leases l
                               WHERE l.tenant_id = req.tenant_id AND l.instance_id = w.claimed_by)))
    ORDER BY w.due_at
    LIMIT req.claim_limit
    FOR UPDATE SKIP LOCKED
  ) p
), claimed AS (
  UPDATE callbackd.pending_work w
  SET claimed_by = $2,
      claim_token = nextval('callbackd.claim_token_seq'),
      lease_until = now() + $3::bigint * interval '1 millisecond'
  FROM due, callbackd.desired_callbacks d
  WHERE w.mchid = due.mchid AND d.mchid = w.mchid AND d.revision >= w.revision
  RETURNING w.mchid, w.tenant_id, w.claim_token, w.resync, w.due_at, d.notify_url, d.switch,
            d.revision AS desired_revision
), later AS (
  SELECT req.ord, req.tenant_id, t.allowed_notify_hosts, t.max_changes_per_hour, t.adopt_existing, LEAST(
    -- Held entries (0008) wait at infinity for an approval, not for a time.
    (SELECT min(due_at) FROM callbackd.pending_work
      WHERE tenant_id = req.tenant_id AND due_at > now() AND due_at < 'infinity'),
    (SELECT min(lease_until) FROM callbackd.pending_work
      WHERE tenant_id = req.tenant_id AND claim_token IS NOT NULL AND lease_until >= now())
  ) AS at
  FROM req
  -- The tenant's guard rails (0008) as of this claim: the same snapshot that saw the entries a
  -- change of allowed_notify_hosts queued judges them with the new list.
  LEFT JOIN callbackd.tenants t ON t.tenant_id = req.tenant_id
)
SELECT later.ord, c.mchid, c.tenant_id, c.claim_token, c.resync, c.notify_url, c.switch, c.desired_revision,
       s.state, s.revision AS state_revision, s.applied_notify_url, s.applied_switch,
       s.applied_revision, s.attempts, s.last_error_message,
       to_jsonb(later.allowed_notify_hosts)::text AS allowed_notify_hosts, later.max_changes_per_hour,
       coalesce(later.adopt_existing, false) AS adopt_existing,
       CASE WHEN later.at IS NULL THEN NULL
            ELSE GREATEST(0, ceil(extract(epoch FROM later.at - now()) * 1000))::bigint END AS next_due_in_ms
FROM later
LEFT JOIN claimed c ON c.tenant_id = later.tenant_id
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = c.mchid
ORDER BY later.ord, c.due_at, c.mchid
