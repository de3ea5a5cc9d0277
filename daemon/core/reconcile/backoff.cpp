#include "core/reconcile/backoff.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace callbackd::reconcile {

RetryPolicy RetryPolicy::from_config(const ReconcilerConfig& config) {
  RetryPolicy policy;
  policy.initial_backoff = config.retry_initial_backoff;
  policy.max_backoff = config.retry_max_backoff;
  CALLBACKD_ASSERT(policy.initial_backoff > Duration::zero() && policy.initial_backoff <= policy.max_backoff);
  return policy;
}

Duration backoff_ceiling(const RetryPolicy& policy, int failures) {
  CALLBACKD_ASSERT(failures >= 1);
  CALLBACKD_ASSERT(policy.initial_backoff > Duration::zero() && policy.initial_backoff <= policy.max_backoff);
  // In doubles so that a row that failed a thousand times cannot overflow the shift;
  // 2^64 initial backoffs are far beyond any max_backoff.
  const double exponent = std::min(failures, 64);
  const double ceiling = static_cast<double>(policy.initial_backoff.count()) * std::exp2(exponent);
  if (ceiling >= static_cast<double>(policy.max_backoff.count())) return policy.max_backoff;
  return Duration{static_cast<Duration::rep>(ceiling)};
}

Duration retry_backoff(const RetryPolicy& policy, int failures, double uniform01) {
  CALLBACKD_ASSERT(uniform01 >= 0.0 && uniform01 <= 1.0);
  const Duration ceiling = backoff_ceiling(policy, failures);
  const double span = static_cast<double>((ceiling - policy.initial_backoff).count());
  const auto offset = static_cast<Duration::rep>(span * uniform01);
  return std::clamp(policy.initial_backoff + Duration{offset}, policy.initial_backoff, ceiling);
}

}  // namespace callbackd::reconcile
