-- `status`: rows per tenant and state, as callbackd.sync_status shows them, from the counts
-- kept by migrations/0014 (callbackd.row_state_counts: no scan of every row).
SELECT tenant_id, state, n
FROM callbackd.row_state_counts()
