#include "core/reconcile/work_verdict.h"

namespace callbackd::reconcile {

std::string_view WorkVerdict::reason_name() const {
  switch (action) {
    case WorkAction::send:
      if (now_allowed) return "now_allowed";
      return send_reason ? send_reason_name(*send_reason) : std::string_view("resync");
    case WorkAction::mark_invalid:
      return "invalid";
    case WorkAction::drop:
      return hold ? hold_reason_name(*hold) : std::string_view("in_sync");
  }
  return {};
}

WorkVerdict judge_work_item(std::string_view sub_mchid, const std::optional<std::string>& notify_url,
                            const DesiredCallback& desired, const std::optional<RecordedState>& recorded,
                            const std::optional<desired::AllowedHosts>& allowed_hosts, bool resync) {
  WorkVerdict v;
  const std::string url = notify_url.value_or(std::string());
  auto error = desired::validate_desired(sub_mchid, url);
  if (!error) error = desired::check_notify_host(url, allowed_hosts);
  const bool parked_invalid =
      recorded && recorded->state == RowState::invalid && recorded->revision >= desired.revision;
  if (error) {
    if (parked_invalid && recorded->last_error_message == error->message) {
      v.action = WorkAction::drop;
      v.hold = HoldReason::invalid_until_changed;
      return v;
    }
    v.action = WorkAction::mark_invalid;
    v.invalid = std::move(error);
    return v;
  }
  if (parked_invalid) {
    v.action = WorkAction::send;
    v.now_allowed = true;
    return v;
  }
  const SendVerdict diff = should_send(desired, recorded);
  if (diff.send) {
    v.action = WorkAction::send;
    v.send_reason = diff.reason;
    return v;
  }
  if (resync && diff.hold == HoldReason::in_sync) {
    v.action = WorkAction::send;
    v.resync = true;
    return v;
  }
  v.action = WorkAction::drop;
  v.hold = diff.hold;
  return v;
}

bool changes_applied_values(const WorkVerdict& verdict, const DesiredCallback& desired,
                            const std::optional<RecordedState>& recorded) {
  if (verdict.action != WorkAction::send || !recorded || !recorded->applied_revision || !recorded->applied_notify_url)
    return false;
  return *recorded->applied_notify_url != desired.notify_url || recorded->applied_switch != desired.push_switch;
}

}  // namespace callbackd::reconcile
