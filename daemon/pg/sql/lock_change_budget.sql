-- The first statement of a change-budget admission's transaction (admit_changes.sql): the
-- tenant's budget lock, which approve_changes() takes too (migrations/0008_guard_rails.sql).
-- A statement of its own so that admit_changes.sql's snapshot is taken after the lock is held.
SELECT callbackd.change_budget_lock($1)
