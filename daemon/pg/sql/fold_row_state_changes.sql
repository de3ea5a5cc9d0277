-- The daemon's bookkeeping for the row counts (migrations/0014): folds at most $1 of the
-- oldest change entries into callbackd.row_states and row_state_totals, and answers how many
-- it took (0 while another instance folds). Run on the status page's thread
-- (app/operations.cpp), never the reconciler's.
SELECT callbackd.fold_row_state_changes($1)
