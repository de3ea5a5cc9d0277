-- `callbackd approve TENANT` (pg/approvals.cpp): the SQL function does everything; executable
-- by callbackd_operator only (migrations/0008_guard_rails.sql).
SELECT callbackd.approve_changes($1) AS released
