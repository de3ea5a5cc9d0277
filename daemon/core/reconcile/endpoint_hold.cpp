#include "core/reconcile/endpoint_hold.h"

#include <algorithm>

#include "core/error.h"

namespace callbackd::reconcile {

EndpointHold::EndpointHold(EndpointHoldTuning tuning) : tuning_(tuning) {
  CALLBACKD_ASSERT(tuning_.initial_backoff > Duration::zero() && tuning_.initial_backoff <= tuning_.max_backoff);
  CALLBACKD_ASSERT(tuning_.jitter >= 0 && tuning_.jitter < 1);
  CALLBACKD_ASSERT(tuning_.not_wechatpay_rows >= 1);
}

Duration EndpointHold::jittered(Duration step, double uniform01) const {
  const double u = std::clamp(uniform01, 0.0, 1.0);
  return std::chrono::duration_cast<Duration>(step * (1.0 - tuning_.jitter * u));
}

EndpointPermission EndpointHold::permission(Instant now) const {
  if (!held_) return {};
  if (probe_in_flight_) return {false, false, std::nullopt};
  if (now < next_probe_at_) return {false, false, next_probe_at_};
  return {true, true, std::nullopt};
}

void EndpointHold::on_sent(Instant now, bool probe) {
  const EndpointPermission p = permission(now);
  CALLBACKD_ASSERT(p.allowed && p.probe == probe);
  if (probe) probe_in_flight_ = true;
}

std::string_view endpoint_hold_reason_name(EndpointHoldReason reason) {
  switch (reason) {
    case EndpointHoldReason::unreachable:
      return "unreachable";
    case EndpointHoldReason::not_wechatpay:
      return "not_wechatpay";
  }
  return "unreachable";
}

EndpointTransition EndpointHold::hold(EndpointHoldReason reason, Instant now, double uniform01) {
  held_ = true;
  reason_ = reason;
  held_since_ = now;
  failed_probes_ = 0;
  step_ = tuning_.initial_backoff;
  next_probe_at_ = now + jittered(step_, uniform01);
  not_wechatpay_streak_.clear();
  return EndpointTransition::held;
}

EndpointTransition EndpointHold::on_finished(EndpointReach reach, bool probe, Instant now, double uniform01,
                                             std::string_view row) {
  if (probe && held_) {
    probe_in_flight_ = false;
    switch (reach) {
      case EndpointReach::reached:
        held_ = false;  // failed_probes_ and reason_ stay, for the log line of the release
        return EndpointTransition::released;
      case EndpointReach::unreachable:
      case EndpointReach::not_wechatpay:
        ++failed_probes_;
        reason_ =
            reach == EndpointReach::unreachable ? EndpointHoldReason::unreachable : EndpointHoldReason::not_wechatpay;
        step_ = std::min(tuning_.max_backoff, step_ * 2);
        next_probe_at_ = now + jittered(step_, uniform01);
        return EndpointTransition::none;
      case EndpointReach::not_sent:
        return EndpointTransition::none;  // next_probe_at_ has passed: another probe may go
    }
  }
  if (held_) return EndpointTransition::none;
  switch (reach) {
    case EndpointReach::unreachable:
      return hold(EndpointHoldReason::unreachable, now, uniform01);
    case EndpointReach::not_wechatpay:
      if (std::find(not_wechatpay_streak_.begin(), not_wechatpay_streak_.end(), row) == not_wechatpay_streak_.end())
        not_wechatpay_streak_.emplace_back(row);
      if (static_cast<int>(not_wechatpay_streak_.size()) >= tuning_.not_wechatpay_rows)
        return hold(EndpointHoldReason::not_wechatpay, now, uniform01);
      return EndpointTransition::none;
    case EndpointReach::reached:
      not_wechatpay_streak_.clear();
      return EndpointTransition::none;
    case EndpointReach::not_sent:
      return EndpointTransition::none;
  }
  return EndpointTransition::none;
}

}  // namespace callbackd::reconcile
