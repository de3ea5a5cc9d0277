-- The tenant page: the newest $2 audit rows of tenant $1 (index audit_log_tenant_created).
SELECT * FROM callbackd.status_audit_rows WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2
