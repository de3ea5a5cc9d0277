#include "core/reconcile/lease_timing.h"

#include <algorithm>

namespace callbackd::reconcile {

Duration request_deadline(const WechatpayConfig& wechatpay) {
  return 2 * wechatpay.connect_timeout + wechatpay.request_timeout;
}

LeaseTiming lease_timing(const WechatpayConfig& wechatpay, const LeaseTuning& tuning) {
  const Duration margin = tuning.dispatch_slack + request_deadline(wechatpay) + tuning.clock_slack;
  return {margin, margin + tuning.renewal_window,
          tuning.dispatch_slack + wechatpay.request_timeout + tuning.clock_slack};
}

LeaseTiming lease_timing_since_reload(const LeaseTiming& before, Instant reloaded_at, const LeaseTiming& after,
                                      Instant now) {
  if (now - reloaded_at >= before.send_margin) return after;
  return {std::max(before.send_margin, after.send_margin), std::max(before.lease, after.lease),
          std::max(before.dead_owner_margin, after.dead_owner_margin)};
}

Duration send_until_shift_after_reload(const LeaseTiming& before, const LeaseTiming& after) {
  return std::max(Duration::zero(), after.send_margin - before.send_margin);
}

Instant send_until(Instant lease_until, Duration margin_asked_with, Duration margin_now) {
  return lease_until - std::max(margin_asked_with, margin_now);
}

}  // namespace callbackd::reconcile
