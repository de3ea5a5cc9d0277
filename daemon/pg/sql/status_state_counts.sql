-- The status page: rows per tenant and state as callbackd.sync_status shows them (the same
-- numbers as `callbackd status`), for every tenant or the one named by $1. A grouped scan:
-- the page caches its answer for 2 s, so however often it is loaded, this runs at most once
-- per 2 s per page.
SELECT tenant_id, state, count(*) AS n
FROM callbackd.sync_status
WHERE $1::text IS NULL OR tenant_id = $1
GROUP BY tenant_id, state
