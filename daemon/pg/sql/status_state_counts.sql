-- The status page: rows per tenant and state as callbackd.sync_status shows them (the same
-- numbers as `callbackd status`), for every tenant or the one named by $1. From the counts
-- kept by migrations/0014 (callbackd.row_state_counts): bounded by the tenants, their states
-- and the changes of the last seconds, not by the rows.
SELECT tenant_id, state, n
FROM callbackd.row_state_counts($1)
