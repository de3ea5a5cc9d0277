-- The change budget (migrations/0008_guard_rails.sql), for one tenant's claimed rows whose send
-- would change what WeChat Pay holds (core/reconcile/work_verdict.h, changes_applied_values).
-- Runs after lock_change_budget.sql in one transaction, so its counts are exact whatever other
-- instance or approval ran just before. $1 tenant_id; $2 tenants.max_changes_per_hour; $3 a JSON
-- array of {ord, mchid, revision, claim_token} in claim order; $4 the instance.
--  - known: a (sub-merchant, revision) let through before (a retry) or approved: not counted again;
--  - spent: changes let through in the last hour and not covered by an approval;
--  - holding: the tenant already holds changes: every further change is held too (the budget
--    refilling must not let a held mass change trickle out unapproved);
--  - held: the rest, fenced by claim token and revision (an entry whose row changed meanwhile is
--    neither admitted nor held: its new revision is claimed and judged anew);
--  - event: one audit row (outcome changes_held) when the tenant starts holding.
-- Rows: one per candidate admitted or held (verdict 'admitted' | 'held'), and one 'tenant' row
-- whose `holding` says whether the tenant held anything before this statement.
WITH cand AS (
  SELECT * FROM jsonb_to_recordset($3::jsonb) AS c(ord integer, mchid text, revision bigint, claim_token bigint)
), known AS (
  SELECT c.* FROM cand c
  WHERE EXISTS (SELECT 1 FROM callbackd.change_admissions a WHERE a.mchid = c.mchid AND a.revision = c.revision)
), budget AS (
  SELECT (SELECT count(*) FROM callbackd.change_admissions a
          WHERE a.tenant_id = $1 AND a.approval_id IS NULL AND a.admitted_at > now() - interval '1 hour') AS spent,
         EXISTS (SELECT 1 FROM callbackd.pending_work w WHERE w.tenant_id = $1 AND w.held_at IS NOT NULL) AS holding
), fresh AS (
  SELECT c.*, row_number() OVER (ORDER BY c.ord) AS n FROM cand c
  WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.mchid = c.mchid)
), admit AS (
  SELECT f.* FROM fresh f, budget b WHERE NOT b.holding AND f.n <= $2::integer - b.spent
), admitted AS (
  INSERT INTO callbackd.change_admissions (mchid, revision, tenant_id)
  SELECT mchid, revision, $1 FROM admit
  ON CONFLICT (mchid, revision) DO NOTHING
), held AS (
  UPDATE callbackd.pending_work w
  SET held_at = now(), due_at = 'infinity', claimed_by = NULL, claim_token = NULL, lease_until = NULL,
      held_reason = format('change budget of tenant %s reached: %s of max_changes_per_hour %s used in the last hour%s; '
                           'approve with SELECT callbackd.approve_changes(%L) (or `callbackd approve %s`), '
                           'or undo the change (docs/sql.md)',
                           $1, b.spent + (SELECT count(*) FROM admit), $2::integer,
                           CASE WHEN b.holding THEN ' and earlier changes held' ELSE '' END, $1, $1)
  FROM fresh f, budget b
  WHERE w.mchid = f.mchid AND w.claim_token = f.claim_token AND w.revision = f.revision
    AND NOT EXISTS (SELECT 1 FROM admit a WHERE a.mchid = f.mchid)
  RETURNING w.mchid, w.held_reason
), event AS (
  INSERT INTO callbackd.audit_log (tenant_id, mchid, outcome, error_code, error_message, instance)
  SELECT $1, NULL, 'changes_held', 'CHANGE_BUDGET_EXCEEDED', (SELECT held_reason FROM held LIMIT 1), $4
  FROM budget b WHERE NOT b.holding AND EXISTS (SELECT 1 FROM held)
), forgotten AS (
  DELETE FROM callbackd.change_admissions
  WHERE tenant_id = $1 AND admitted_at < now() - interval '1 day'
)
SELECT 'admitted' AS verdict, mchid, NULL::boolean AS holding FROM known
UNION ALL SELECT 'admitted', mchid, NULL FROM admit
UNION ALL SELECT 'held', mchid, NULL FROM held
UNION ALL SELECT 'tenant', NULL, holding FROM budget
