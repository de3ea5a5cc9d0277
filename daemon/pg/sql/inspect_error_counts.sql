-- `status`: error codes per tenant and state, only of rows whose state is about the current
-- revision and is an error state: an older revision's error says nothing about the row now.
SELECT tenant_id, state, last_error_code, count(*) AS n
FROM callbackd.sync_status
WHERE state IN ('retrying', 'failed', 'invalid') AND last_error_code IS NOT NULL
GROUP BY tenant_id, state, last_error_code
ORDER BY tenant_id, n DESC, last_error_code
