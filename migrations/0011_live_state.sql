-- 0011_live_state: callbackd reads back what WeChat Pay holds (issue 15; docs/sql.md, "Live
-- state: adoption and drift"). GET /v3/marketing/favor/callbacks?mchid=M answers the live
-- notify_url only: the push switch cannot be read back.
--
-- 1. tenants.adopt_existing: before the first POST of a row callbackd never applied, read the
--    live value; when it is byte for byte the desired notify_url and the desired switch is NULL
--    or true, record the row in sync without a POST (audit outcome `adopted`, the read's
--    Request-ID). ASSUMPTION: the switch cannot be read, and WeChat Pay's pages say turning
--    pushes off through the API is not supported yet, so a live setting is taken to push; a row
--    whose desired switch is false is always POSTed.
-- 2. tenants.drift_policy: what the daemon does when a read-back (reconciler.drift_check_interval)
--    finds a live notify_url other than the applied one: the row becomes `drifted` (audit outcome
--    `drift_detected`, the live value in notify_url); `repair` sends the desired value again,
--    `report` leaves it drifted until its desired row changes.
-- 3. sub_merchant_state: `drifted`, the last live value read and when, and when the row is read
--    back next (next_read_at) under which read claim (read_token).

ALTER TABLE callbackd.tenants
  ADD COLUMN adopt_existing boolean NOT NULL DEFAULT true,
  ADD COLUMN drift_policy text NOT NULL DEFAULT 'repair' CHECK (drift_policy IN ('repair', 'report'));

COMMENT ON COLUMN callbackd.tenants.adopt_existing IS
  'Read the live notify_url before the first POST of a row never applied by callbackd; equal to '
  'the desired one (byte for byte) with a desired switch NULL or true: record it in sync without a '
  'POST (audit outcome adopted). The switch cannot be read back: a live setting is assumed to '
  'push (WeChat Pay does not support turning pushes off through the API yet).';
COMMENT ON COLUMN callbackd.tenants.drift_policy IS
  'When a read-back finds a live notify_url other than the applied one (state drifted): repair '
  'sends the desired value again; report leaves the row drifted until its desired row changes.';

-- `drifted` next to the four states of 0001. The constraint was created unnamed inline: its
-- default name is sub_merchant_state_state_check.
ALTER TABLE callbackd.sub_merchant_state DROP CONSTRAINT sub_merchant_state_state_check;
ALTER TABLE callbackd.sub_merchant_state ADD CONSTRAINT sub_merchant_state_state_check
  CHECK (state IN ('in_sync', 'retrying', 'failed', 'invalid', 'drifted'));

ALTER TABLE callbackd.sub_merchant_state
  ADD COLUMN live_notify_url text NULL,        -- as last read ('' when nothing was set)
  ADD COLUMN live_read_at    timestamptz NULL, -- when
  ADD COLUMN next_read_at    timestamptz NULL, -- in_sync rows: the next drift check
  ADD COLUMN read_token      bigint NULL;      -- the read claim (from claim_token_seq)

-- A column, not queue entries: every in-sync row is read once per interval, so a queue would
-- hold an entry for every row in sync (a million rows: a million entries rewritten daily, and
-- a second place to keep in step with sub_merchant_state). The claim (daemon/pg/sql/
-- claim_reads.sql) reads one tenant's range of this partial index in next_read_at order up to
-- its LIMIT: indexed and bounded, however many rows are in sync. A claim moves next_read_at to
-- the end of its lease, so a crashed reader's rows fall due again by themselves.
CREATE INDEX sub_merchant_state_read_due ON callbackd.sub_merchant_state (tenant_id, next_read_at)
  WHERE state = 'in_sync';

-- Rows in sync before this migration are read back at the first check (then spread over the
-- interval by their mchid).
UPDATE callbackd.sub_merchant_state SET next_read_at = now() WHERE state = 'in_sync';

-- ---------------------------------------------------------------------------------------
-- sync_status: `drifted` comes from sub_merchant_state.state (a drifted row about an older
-- revision reads pending, as any state does); the live value and its time at the end.
CREATE OR REPLACE VIEW callbackd.sync_status AS
SELECT
  d.mchid,
  d.tenant_id,
  CASE
    WHEN t.mode = 'paused' OR ts.paused_reason IS NOT NULL THEN 'paused'
    WHEN w.held_at IS NOT NULL THEN 'held'
    WHEN s.mchid IS NULL OR s.revision < d.revision THEN 'pending'
    ELSE s.state
  END AS state,
  s.applied_notify_url,
  s.applied_switch,
  s.update_time,
  s.attempts,
  s.last_http_status,
  CASE WHEN w.held_at IS NOT NULL THEN 'CHANGE_BUDGET_EXCEEDED' ELSE s.last_error_code END AS last_error_code,
  CASE WHEN w.held_at IS NOT NULL THEN w.held_reason ELSE s.last_error_message END AS last_error_message,
  s.next_attempt_at,
  d.notify_url       AS desired_notify_url,
  d.switch           AS desired_switch,
  d.updated_at       AS desired_updated_at,
  ts.paused_reason   AS tenant_paused_reason,
  s.changed_at       AS state_changed_at,
  w.held_at,
  s.live_notify_url,
  s.live_read_at
FROM callbackd.desired_callbacks d
JOIN callbackd.tenants t ON t.tenant_id = d.tenant_id
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = d.tenant_id
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = d.mchid
LEFT JOIN callbackd.pending_work w ON w.mchid = d.mchid;

COMMENT ON VIEW callbackd.sync_status IS
  'One row per desired row: in_sync | pending | retrying | failed | invalid | paused | held | drifted '
  '(contract). live_notify_url/live_read_at: the last value read back from WeChat Pay (no switch: '
  'it cannot be read).';
