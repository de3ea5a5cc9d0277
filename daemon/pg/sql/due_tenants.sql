-- The poll (the safety net behind LISTEN/NOTIFY): the tenants with a queue entry that a claim
-- could take now ($1: this instance). A superset of what claim_due.sql would take (entries
-- claimed by another instance count too, since this instance may hold their tenant's lease
-- now): a tenant named here only looks, and claims what is really claimable. One probe of
-- pending_work_tenant_due per tenant that stops at its first such entry, so an idle poll over
-- 10,000 tenants costs one short statement, and a backlog is never scanned.
SELECT t.tenant_id FROM callbackd.tenants t
WHERE EXISTS (SELECT 1 FROM callbackd.pending_work w
              WHERE w.tenant_id = t.tenant_id AND w.due_at <= now()
                AND (w.claim_token IS NULL OR w.lease_until < now() OR w.claimed_by <> $1))
ORDER BY t.tenant_id
