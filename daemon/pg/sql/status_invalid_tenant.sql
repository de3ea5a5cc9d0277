-- The tenant page: the newest $2 invalid rows of tenant $1 (index
-- sub_merchant_state_tenant_state).
SELECT * FROM callbackd.status_invalid_rows WHERE tenant_id = $1 ORDER BY changed_at DESC LIMIT $2
