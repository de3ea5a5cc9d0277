-- The status page: the newest $1 invalid rows of every tenant (index
-- sub_merchant_state_state_changed, migration 0010).
SELECT * FROM callbackd.status_invalid_rows ORDER BY changed_at DESC LIMIT $1
