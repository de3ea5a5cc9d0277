#include "core/reconcile/endpoint_hold.h"

#include <algorithm>

#include "core/error.h"

namespace callbackd::reconcile {

EndpointHold::EndpointHold(EndpointHoldTuning tuning) : tuning_(tuning) {
  CALLBACKD_ASSERT(tuning_.initial_backoff > Duration::zero() && tuning_.initial_backoff <= tuning_.max_backoff);
  CALLBACKD_ASSERT(tuning_.jitter >= 0 && tuning_.jitter < 1);
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

EndpointTransition EndpointHold::on_finished(EndpointReach reach, bool probe, Instant now, double uniform01) {
  if (probe && held_) {
    probe_in_flight_ = false;
    switch (reach) {
      case EndpointReach::reached:
        held_ = false;  // failed_probes_ stays, for the log line of the release
        return EndpointTransition::released;
      case EndpointReach::unreachable:
        ++failed_probes_;
        step_ = std::min(tuning_.max_backoff, step_ * 2);
        next_probe_at_ = now + jittered(step_, uniform01);
        return EndpointTransition::none;
      case EndpointReach::not_sent:
        return EndpointTransition::none;  // next_probe_at_ has passed: another probe may go
    }
  }
  if (!held_ && reach == EndpointReach::unreachable) {
    held_ = true;
    held_since_ = now;
    failed_probes_ = 0;
    step_ = tuning_.initial_backoff;
    next_probe_at_ = now + jittered(step_, uniform01);
    return EndpointTransition::held;
  }
  return EndpointTransition::none;
}

}  // namespace callbackd::reconcile
