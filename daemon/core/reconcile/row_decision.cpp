#include "core/reconcile/row_decision.h"

#include <algorithm>

#include "core/error.h"

namespace callbackd::reconcile {

std::string_view row_state_name(RowState state) {
  switch (state) {
    case RowState::in_sync:
      return "in_sync";
    case RowState::pending:
      return "pending";
    case RowState::retrying:
      return "retrying";
    case RowState::failed:
      return "failed";
    case RowState::invalid:
      return "invalid";
    case RowState::drifted:
      return "drifted";
  }
  CALLBACKD_ASSERT(!"unknown RowState");
  return {};
}

RowPolicy RowPolicy::from_config(const ReconcilerConfig& config) {
  RowPolicy policy;
  policy.retry = RetryPolicy::from_config(config);
  policy.tenant_probe_interval = config.tenant_probe_interval;
  return policy;
}

RowDecision decide_after_attempt(const AttemptResult& attempt, const RowPolicy& policy, Instant now, double uniform01) {
  using wechatpay::OutcomeKind;
  CALLBACKD_ASSERT(attempt.prior_failures >= 0);
  RowDecision d;
  auto keep_queued = [&](Duration delay) {
    d.remove_from_queue = false;
    d.delay = delay;
    d.next_attempt_at = now + delay;
  };
  const Duration retry_after = attempt.retry_after ? Duration{*attempt.retry_after} : Duration::zero();

  switch (attempt.outcome) {
    case OutcomeKind::applied:
      d.state = RowState::in_sync;
      d.remove_from_queue = true;
      d.attempts = attempt.prior_failures + 1;
      break;
    case OutcomeKind::rejected:
      d.state = RowState::failed;
      d.remove_from_queue = true;
      d.attempts = attempt.prior_failures + 1;
      d.counts_as_failure = true;
      break;
    case OutcomeKind::transient: {
      d.state = RowState::retrying;
      d.attempts = attempt.prior_failures + 1;
      d.counts_as_failure = true;
      // A 503 with Retry-After: the server knows better than our backoff when to come back.
      keep_queued(std::max(retry_backoff(policy.retry, d.attempts, uniform01), retry_after));
      break;
    }
    case OutcomeKind::rate_limited:
      d.state = RowState::pending;
      d.attempts = attempt.prior_failures;
      keep_queued(attempt.retry_after ? retry_after : policy.rate_limited_delay);
      break;
    case OutcomeKind::tenant_error:
      d.state = RowState::pending;
      d.attempts = attempt.prior_failures;
      keep_queued(Duration::zero());
      d.pause_tenant = true;
      d.tenant_probe_delay = policy.tenant_probe_interval;
      break;
    case OutcomeKind::invalid:
      d.state = RowState::invalid;
      d.remove_from_queue = true;
      d.attempts = 0;  // never sent
      break;
  }
  return d;
}

}  // namespace callbackd::reconcile
