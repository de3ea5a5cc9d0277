// Should this sub-merchant's desired row be sent? The diff behind `plan` and `run`. Pure;
// never throws.
//
// A row is sent when it was never applied, when its desired values differ from the values
// last recorded as applied, or when the desired row was touched after the last recorded
// apply. "Touched after" is decided by REVISIONS, never by timestamps:
// desired_callbacks.revision comes from a sequence (callbackd.desired_revision_seq) and is
// bumped by a trigger on every INSERT and UPDATE, even one that changes no value; the store
// records in sub_merchant_state.applied_revision the revision it claimed when WeChat Pay's
// verified response confirmed the apply. Comparing desired_callbacks.updated_at (PostgreSQL's
// clock) with update_time (WeChat Pay's clock) would be wrong in both directions under clock
// skew: if PostgreSQL runs behind, a change made just after an apply looks older than the
// apply and is MISSED; if it runs ahead, an applied row looks changed again and is RE-SENT
// FOREVER. A sequence has no clock: a later write always has a larger revision, so neither
// can happen. WeChat Pay's update_time is kept for the auditor only.
//
// A row that failed (rejected) or is invalid stays parked until its revision changes: the
// same values would fail the same way, and re-sending them every poll would burn the
// tenant's quota. Operators retry a failed row by touching it (UPDATE ... SET notify_url =
// notify_url), which bumps the revision.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/reconcile/row_decision.h"

namespace callbackd::reconcile {

// callbackd.desired_callbacks, as far as the diff needs it.
struct DesiredCallback {
  std::string notify_url;
  std::optional<bool> push_switch;  // desired_callbacks.switch; nullopt: the field is omitted
  std::int64_t revision = 0;
};

// callbackd.sub_merchant_state, as far as the diff needs it.
struct RecordedState {
  RowState state = RowState::pending;
  std::int64_t revision = 0;  // the desired revision this state is about
  std::optional<std::string> applied_notify_url;
  std::optional<bool> applied_switch;
  std::optional<std::int64_t> applied_revision;  // nullopt: never confirmed by WeChat Pay
  // Why the row is failed or invalid; judge_work_item (work_verdict.h) re-records an invalid row
  // only when the reason changed (its tenant's allowed_notify_hosts did).
  std::optional<std::string> last_error_message;
};

enum class SendReason { never_applied, values_differ, touched_after_apply };
enum class HoldReason { in_sync, failed_until_changed, invalid_until_changed };
std::string_view send_reason_name(SendReason reason);  // "never_applied", ...
std::string_view hold_reason_name(HoldReason reason);  // "in_sync", ...

struct SendVerdict {
  bool send = false;
  std::optional<SendReason> reason;  // set exactly when send
  std::optional<HoldReason> hold;    // set exactly when !send
};

// `recorded` is nullopt when the daemon never touched this sub-merchant. The switch compares
// as an optional: "omit" (nullopt) differs from an applied true/false, because what we sent
// last time is what WeChat Pay holds (a NULL written over a value also bumps the revision).
// Whether the row is valid is not decided here (desired/validation.h runs first) and neither
// is WHEN it goes out (next_attempt_at, the tenant's pacer and gate).
SendVerdict should_send(const DesiredCallback& desired, const std::optional<RecordedState>& recorded);

}  // namespace callbackd::reconcile
