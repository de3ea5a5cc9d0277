// The units of work the run loop moves between the store and WeChat Pay: a claimed queue
// entry (WorkItem), the outcome of one attempt as it is recorded (AttemptRecord), and the
// tenant-wide events and pauses kept next to them. Plain data, no I/O: the store
// (engine/store.h, implemented by daemon/pg) reads and writes them, core/reconcile decides
// over them.
//
// Names: `tenant_id` is the operator's name for a calling merchant (whose id is
// `caller_mchid`, core/tenant.h); `sub_mchid` is the sub-merchant a row is about (the column
// `mchid` of desired_callbacks, audit_log and sync_status).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/desired/notify_host.h"
#include "core/reconcile/diff.h"
#include "core/reconcile/held_changes.h"
#include "core/reconcile/row_decision.h"

namespace callbackd::reconcile {

// One claimed pending_work entry with what sending it needs.
struct WorkItem {
  std::string sub_mchid;
  std::string tenant_id;
  std::int64_t claim_token = 0;
  bool resync = false;  // queued by a full resync: send even when the diff says in sync
  // desired_callbacks as of the claim (revision == pending_work.revision or newer; the
  // claimed revision is desired.revision).
  std::optional<std::string> notify_url;  // NULL notify_url is stored verbatim: invalid
  DesiredCallback desired;                // notify_url "" when NULL; revision
  std::optional<RecordedState> recorded;  // sub_merchant_state, nullopt if never touched
  int attempts = 0;                       // sub_merchant_state.attempts when its revision == desired.revision, else 0
  // The run loop's: dispatch no later (claim_policy.h, claim_send_by); later it is given back.
  Instant send_by = Instant::max();
};

// Up to `limit` due entries of one tenant.
struct ClaimRequest {
  std::string tenant_id;
  int limit = 0;
};

struct ClaimResult {
  std::string tenant_id;
  std::vector<WorkItem> items;
  // When the earliest of this tenant's entries that were NOT claimable now becomes claimable,
  // as a delay from now (0 at the least); nullopt when none: an unclaimed entry due later (its
  // due_at), or an entry claimed with a lease (its lease_until: a claimed entry is already
  // due, so its due_at would say "now" and make the caller spin). Entries left unclaimed
  // only because of `limit` are not counted: a full batch means "claim again".
  std::optional<std::chrono::milliseconds> next_due_in;
  // The tenant's guard rails as of the claim (migrations/0008_guard_rails.sql): its
  // allowed_notify_hosts (nullopt: any host), with which the items are judged.
  std::optional<desired::AllowedHosts> allowed_hosts;
  // Rows the change budget held in this claim instead of returning them (never sent, never
  // claimed again until approved), and what they would have changed; `started_holding` when
  // the tenant held nothing before (the run loop warns once, not once per row).
  long long held = 0;
  std::vector<HeldMove> held_moves;
  bool started_holding = false;
  // tenants.adopt_existing as of the claim (migrations/0011): rows never applied are read back
  // before their first POST (live_state.h). false when the store does not say (the memory store).
  bool adopt_existing = false;
};

// One attempt (or a validation verdict) and the row's new state, as decided by
// decide_after_attempt.
struct AttemptRecord {
  std::string tenant_id;
  std::string sub_mchid;
  std::int64_t revision = 0;              // the desired revision that was sent
  std::int64_t claim_token = 0;           // fencing: engine/store.h
  std::optional<std::string> notify_url;  // as sent (audit)
  std::optional<bool> push_switch;        // as sent (audit); nullopt: omitted
  std::string outcome;                    // wechatpay::outcome_name
  std::optional<int> http_status;
  std::string error_code;     // "" when applied
  std::string error_message;  // "" when applied, or what was odd about a verified answer (Outcome::warning)
  std::optional<std::string> request_id;
  std::optional<int> latency_ms;           // nullopt when nothing was sent (invalid)
  int attempt = 1;                         // audit_log.attempt: counted attempts of this revision, this one included
  std::optional<std::string> update_time;  // verbatim, applied only
  RowDecision decision;                    // state, remove_from_queue, delay, attempts
  // The row's state as callbackd.sync_status showed it when claimed (a state about an older
  // revision, or none, reads as pending): with decision.state, the move the progress table
  // counts (core/progress/row_tally.h).
  RowState state_before = RowState::pending;
  // A read of the live value made for this record (adoption): stored as the row's last live
  // value (sub_merchant_state.live_notify_url, live_read_at). nullopt: no read.
  std::optional<std::string> live_notify_url;
  // decision.state in_sync: when the row's first drift check is due (next_read_at = now() +
  // this; live_state.h). nullopt: due at once (a check runs when drift checks are on).
  std::optional<Duration> next_read_in;
};

// The part of an attempt's record that follows from the claimed item: which row, which
// revision and values, under which claim, the attempt number, and the outcome's name.
AttemptRecord attempt_record_for(const WorkItem& item, std::string_view outcome);

// A row in sync claimed for a drift check (migrations/0011: sub_merchant_state.read_token,
// next_read_at moved to the end of the claim's lease).
struct DriftCheck {
  std::string sub_mchid;
  std::string tenant_id;
  std::int64_t read_token = 0;                    // fencing: the record applies only under it
  std::optional<std::string> applied_notify_url;  // what the live value is compared with
  std::int64_t revision = 0;                      // sub_merchant_state.revision (the audit row's)
};

// What a drift check found. Written only while the row still carries the check's read token,
// is in sync with the same applied notify_url and has no queued change (a change in flight is
// not drift). drifted: state `drifted`, an audit row `drift_detected` with the live value, and
// under the tenant's drift_policy `repair` a queue entry that sends the desired value again.
struct DriftCheckRecord {
  DriftCheck check;
  std::optional<std::string> live_notify_url;  // nullopt: the read failed (the row stays in sync)
  bool drifted = false;
  std::optional<int> http_status;
  std::optional<std::string> request_id;
  Duration next_read_in{};  // the next check: next_read_at = now() + this
};

// A tenant-wide event for the audit log (mchid NULL), e.g. a tenant paused for bad keys.
struct TenantEvent {
  std::string tenant_id;
  std::string outcome;  // "tenant_error" or "tenant_resumed"
  std::string error_code;
  std::string error_message;
};

// A tenant paused by an error, as tenant_state holds it.
struct StoredTenantPause {
  std::string error_code;
  std::string reason;
  std::chrono::milliseconds probe_in{0};  // next_probe_at - now(), clamped at 0
};

// Per tenant, for metrics: pending_work entries and the age (database clock) of the oldest
// queued real change (resync entries excluded).
struct TenantQueue {
  std::string tenant_id;
  long long queued = 0;
  long long held = 0;  // of `queued`: held by the change budget until approved
  std::optional<std::chrono::milliseconds> oldest_pending_change;
};

}  // namespace callbackd::reconcile
