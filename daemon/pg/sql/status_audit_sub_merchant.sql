-- The sub-merchant page: the newest $2 audit rows of sub-merchant $1 (index
-- audit_log_mchid_created), also of an mchid no longer desired: the audit outlives the row.
SELECT * FROM callbackd.status_audit_rows WHERE mchid = $1 ORDER BY created_at DESC, id DESC LIMIT $2
