-- 0010_status_page_index: the status page (GET / on metrics.listen, docs/operations.md) lists
-- the newest invalid rows of the whole instance. sub_merchant_state_tenant_state (0001) serves
-- one tenant's rows; across tenants this index lets the page read the newest N invalid rows
-- (ORDER BY changed_at DESC LIMIT N) without scanning or sorting every row of that state.
-- Also serves "the newest failed rows" queries of docs/sql.md.
CREATE INDEX sub_merchant_state_state_changed ON callbackd.sub_merchant_state (state, changed_at);

-- What the status page shows of a stored value: itself, or, over 1 KiB, its first 256
-- characters and its size. desired_callbacks keeps invalid values verbatim (a 10 MB
-- notify_url, a 200 kB mchid: tests/e2e/bad_input_e2etest.cpp), and a page listing 50 of
-- them must not carry 500 MB. Cut in the database, so the bytes never leave it.
CREATE FUNCTION callbackd.status_excerpt(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN octet_length(value) > 1024
            THEN left(value, 256) || '…(' || octet_length(value) || ' bytes)'
            ELSE value END;
-- Functions are executable by PUBLIC unless revoked; said here so that a later REVOKE cannot
-- silently break the page of either role that reads it.
GRANT EXECUTE ON FUNCTION callbackd.status_excerpt(text) TO callbackd_daemon, callbackd_operator;

-- The rows the page lists, as it shows them (times as UTC text, long values cut). Raw key
-- columns stay beside the shown ones so that the statements filter and order by indexed
-- columns (a simple view is inlined: WHERE and ORDER BY ... LIMIT reach the indexes).
CREATE VIEW callbackd.status_audit_rows AS
SELECT id, created_at, tenant_id, mchid,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS"Z"') AS created_text,
       callbackd.status_excerpt(mchid) AS mchid_shown, outcome, http_status, error_code, error_message,
       callbackd.status_excerpt(notify_url) AS notify_url, switch, instance
FROM callbackd.audit_log;

-- Invalid rows about the current desired revision only (an older revision's verdict says
-- nothing about the row now).
CREATE VIEW callbackd.status_invalid_rows AS
SELECT s.mchid, s.tenant_id, s.changed_at, s.state,
       callbackd.status_excerpt(s.mchid) AS mchid_shown, s.last_error_code, s.last_error_message,
       callbackd.status_excerpt(d.notify_url) AS notify_url,
       to_char(s.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"') AS changed_text
FROM callbackd.sub_merchant_state s
JOIN callbackd.desired_callbacks d ON d.mchid = s.mchid AND d.revision = s.revision
WHERE s.state = 'invalid';

GRANT SELECT ON callbackd.status_audit_rows, callbackd.status_invalid_rows TO callbackd_daemon, callbackd_operator;
