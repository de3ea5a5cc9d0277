-- `status`: rows per tenant and state, as callbackd.sync_status shows them.
SELECT tenant_id, state, count(*) AS n
FROM callbackd.sync_status
GROUP BY tenant_id, state
