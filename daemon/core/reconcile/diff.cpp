#include "core/reconcile/diff.h"

#include "core/error.h"

namespace callbackd::reconcile {

std::string_view send_reason_name(SendReason reason) {
  switch (reason) {
    case SendReason::never_applied:
      return "never_applied";
    case SendReason::values_differ:
      return "values_differ";
    case SendReason::touched_after_apply:
      return "touched_after_apply";
  }
  CALLBACKD_ASSERT(!"unknown SendReason");
  return {};
}

std::string_view hold_reason_name(HoldReason reason) {
  switch (reason) {
    case HoldReason::in_sync:
      return "in_sync";
    case HoldReason::failed_until_changed:
      return "failed_until_changed";
    case HoldReason::invalid_until_changed:
      return "invalid_until_changed";
  }
  CALLBACKD_ASSERT(!"unknown HoldReason");
  return {};
}

namespace {
SendVerdict send(SendReason reason) { return SendVerdict{true, reason, std::nullopt}; }
SendVerdict hold(HoldReason reason) { return SendVerdict{false, std::nullopt, reason}; }
}  // namespace

SendVerdict should_send(const DesiredCallback& desired, const std::optional<RecordedState>& recorded) {
  if (!recorded) return send(SendReason::never_applied);

  // Parked: the verdict was about this revision (or a later one), so nothing changed since.
  if (recorded->revision >= desired.revision) {
    if (recorded->state == RowState::failed) return hold(HoldReason::failed_until_changed);
    if (recorded->state == RowState::invalid) return hold(HoldReason::invalid_until_changed);
  }

  if (!recorded->applied_revision || !recorded->applied_notify_url) return send(SendReason::never_applied);
  if (*recorded->applied_notify_url != desired.notify_url || recorded->applied_switch != desired.push_switch) {
    return send(SendReason::values_differ);
  }
  if (desired.revision > *recorded->applied_revision) return send(SendReason::touched_after_apply);
  return hold(HoldReason::in_sync);
}

}  // namespace callbackd::reconcile
