-- The status page: the newest $1 audit rows (primary key, newest first).
SELECT * FROM callbackd.status_audit_rows ORDER BY id DESC LIMIT $1
