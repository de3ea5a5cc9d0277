// Retry backoff for transient failures of a row (5xx, network errors, timeouts, mangled
// responses). Pure: the randomness is a parameter. Never throws; a broken precondition is a
// bug and stops the process (CALLBACKD_ASSERT).
#pragma once

#include "core/config.h"
#include "core/reconcile/time.h"

namespace callbackd::reconcile {

struct RetryPolicy {
  Duration initial_backoff = std::chrono::seconds{1};
  Duration max_backoff = std::chrono::minutes{5};

  // reconciler.retry_initial_backoff / retry_max_backoff (config guarantees 0 < initial <= max).
  static RetryPolicy from_config(const ReconcilerConfig& config);
};

// The upper end of the wait after the `failures`-th consecutive failure (failures >= 1):
// min(max_backoff, initial_backoff * 2^failures). Doubles per failure until it reaches the max.
Duration backoff_ceiling(const RetryPolicy& policy, int failures);

// "Full jitter" with a floor: uniform in [initial_backoff, backoff_ceiling(failures)], picked by
// `uniform01` in [0, 1]. The jitter spreads rows that failed together (one 5xx storm hits
// hundreds of rows at once) so that their retries do not arrive as one burst; the floor keeps
// any retry from coming sooner than initial_backoff. Never below initial_backoff, never above
// max_backoff. Asserts failures >= 1 and 0 <= uniform01 <= 1.
Duration retry_backoff(const RetryPolicy& policy, int failures, double uniform01);

}  // namespace callbackd::reconcile
