#include "core/reconcile/work_verdict.h"

namespace callbackd::reconcile {

std::string_view WorkVerdict::reason_name() const {
  switch (action) {
    case WorkAction::send:
      return send_reason ? send_reason_name(*send_reason) : std::string_view("resync");
    case WorkAction::mark_invalid:
      return "invalid";
    case WorkAction::drop:
      return hold ? hold_reason_name(*hold) : std::string_view("in_sync");
  }
  return {};
}

WorkVerdict judge_work_item(std::string_view sub_mchid, const std::optional<std::string>& notify_url,
                            const DesiredCallback& desired, const std::optional<RecordedState>& recorded, bool resync) {
  WorkVerdict v;
  if (auto error = desired::validate_desired(sub_mchid, notify_url.value_or(std::string()))) {
    v.action = WorkAction::mark_invalid;
    v.invalid = std::move(error);
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

}  // namespace callbackd::reconcile
