-- The status page: retrying and failed rows grouped by tenant, state and error code, largest
-- group first, each with its first $2 sub-merchant ids (a JSON array: an mchid may hold any
-- character). At most $3 groups. The rows callbackd.sync_status shows as retrying or failed,
-- found from the state index (sub_merchant_state_state_changed, migration 0010; MATERIALIZED
-- keeps the planner starting there) rather than by deriving every row's state: the work grows
-- with the failing rows, not with all rows. A row the view shows otherwise is left out the
-- same way: a newer desired revision (pending), its change held, its tenant paused (mode or
-- daemon).
WITH failing AS MATERIALIZED (
  SELECT mchid, state, last_error_code, revision
  FROM callbackd.sub_merchant_state
  WHERE state IN ('retrying', 'failed') AND last_error_code IS NOT NULL
)
SELECT d.tenant_id, f.state, f.last_error_code, count(*) AS n,
       to_json((array_agg(f.mchid ORDER BY f.mchid))[1:$2::int])::text AS sample_mchids
FROM failing f
JOIN callbackd.desired_callbacks d ON d.mchid = f.mchid AND f.revision >= d.revision
LEFT JOIN callbackd.pending_work w ON w.mchid = f.mchid
WHERE w.held_at IS NULL
  AND ($1::text IS NULL OR d.tenant_id = $1)
  AND NOT EXISTS (SELECT 1 FROM callbackd.tenants t LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = t.tenant_id
                  WHERE t.tenant_id = d.tenant_id AND (t.mode = 'paused' OR ts.paused_reason IS NOT NULL))
GROUP BY d.tenant_id, f.state, f.last_error_code
ORDER BY n DESC, d.tenant_id, f.state, f.last_error_code
LIMIT $3
