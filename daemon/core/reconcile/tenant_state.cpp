#include "core/reconcile/tenant_state.h"

#include <algorithm>

#include "core/error.h"

namespace callbackd::reconcile {

namespace {
int effective_limit(int tenant_max_in_flight, int config_max_in_flight_per_tenant) {
  // A non-positive value would stop the tenant for good; the schema and config refuse it,
  // and one request at a time is the least that still makes progress.
  return std::max(1, std::min(tenant_max_in_flight, config_max_in_flight_per_tenant));
}
}  // namespace

Duration probe_wait(Duration step, Duration probe_interval, double jitter01, const TenantProbeTuning& tuning) {
  if (step >= probe_interval) return probe_interval;
  const double u = std::clamp(jitter01, 0.0, 1.0);
  return std::chrono::duration_cast<Duration>(step * (1.0 - tuning.jitter * u));
}

TenantState::TenantState(TenantMode mode, int tenant_max_in_flight, int config_max_in_flight_per_tenant,
                         Duration probe_interval, TenantProbeTuning probe_tuning)
    : mode_(mode),
      in_flight_limit_(effective_limit(tenant_max_in_flight, config_max_in_flight_per_tenant)),
      probe_interval_(probe_interval),
      probe_tuning_(probe_tuning) {
  CALLBACKD_ASSERT(probe_interval_ > Duration::zero());
  CALLBACKD_ASSERT(probe_tuning_.first_probe > Duration::zero());
  CALLBACKD_ASSERT(probe_tuning_.jitter >= 0 && probe_tuning_.jitter < 1);
}

void TenantState::restore_pause(TenantPause pause) {
  pause_ = std::move(pause);
  if (pause_->probe_step <= Duration::zero()) pause_->probe_step = first_step();
}

void TenantState::set_max_in_flight(int tenant_max_in_flight, int config_max_in_flight_per_tenant) {
  in_flight_limit_ = effective_limit(tenant_max_in_flight, config_max_in_flight_per_tenant);
}

void TenantState::set_probe_interval(Duration probe_interval) {
  CALLBACKD_ASSERT(probe_interval > Duration::zero());
  probe_interval_ = probe_interval;
}

SendPermission TenantState::permission(Instant now) const {
  if (!sends()) return {};
  if (pause_) {
    if (probe_in_flight_) return {};
    if (now < pause_->next_probe_at) return {false, true, pause_->next_probe_at};
    // Requests sent before the pause may still be out; the probe does not wait for them
    // unless they fill the in-flight limit.
    if (in_flight_ >= in_flight_limit_) return {};
    return {true, true, std::nullopt};
  }
  if (in_flight_ >= in_flight_limit_) return {};
  return {true, false, std::nullopt};
}

void TenantState::on_sent(Instant now, bool probe) {
  const SendPermission p = permission(now);
  CALLBACKD_ASSERT(p.allowed && p.probe == probe);
  ++in_flight_;
  if (probe) probe_in_flight_ = true;
}

TenantTransition TenantState::on_finished(wechatpay::OutcomeKind outcome, bool probe, Instant now,
                                          std::string_view error_code, std::string_view reason, double jitter01) {
  CALLBACKD_ASSERT(in_flight_ > 0);
  --in_flight_;
  if (probe) {
    CALLBACKD_ASSERT(probe_in_flight_);
    probe_in_flight_ = false;
  }

  if (outcome == wechatpay::OutcomeKind::applied && probe && pause_) {
    pause_.reset();
    return TenantTransition::resumed;
  }
  if (outcome == wechatpay::OutcomeKind::tenant_error && !pause_) {
    pause_ = TenantPause{std::string(error_code), std::string(reason), now,
                         now + first_probe_wait(probe_interval_, jitter01, probe_tuning_), first_step()};
    return TenantTransition::paused;
  }
  if (!pause_) return TenantTransition::none;
  if (outcome == wechatpay::OutcomeKind::tenant_error) {
    // Still broken: keep the latest words for the operator.
    pause_->error_code = std::string(error_code);
    pause_->reason = std::string(reason);
  }
  if (probe) {
    // The probe did not prove a fix: wait twice as long (up to the interval) for the next.
    pause_->probe_step = std::min(probe_interval_, pause_->probe_step * 2);
    pause_->next_probe_at = now + probe_wait(pause_->probe_step, probe_interval_, jitter01, probe_tuning_);
  }
  return TenantTransition::none;
}

}  // namespace callbackd::reconcile
