#include "core/reconcile/claim_policy.h"

#include <algorithm>

namespace callbackd::reconcile {

int claim_batch(double effective_rate_per_minute) {
  return std::clamp(static_cast<int>(effective_rate_per_minute / 30), 1, 200);
}

std::chrono::milliseconds claim_lease(std::chrono::milliseconds request_timeout, Duration tenant_lease) {
  using std::chrono::milliseconds;
  return std::max({milliseconds{30'000}, request_timeout * 3, std::chrono::ceil<milliseconds>(tenant_lease)});
}

Instant claim_send_by(Instant asked_at, std::chrono::milliseconds lease, Duration send_margin) {
  return asked_at + lease - send_margin;
}

}  // namespace callbackd::reconcile
