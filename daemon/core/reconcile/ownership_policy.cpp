#include "core/reconcile/ownership_policy.h"

#include <algorithm>

namespace callbackd::reconcile {

int rate_shares(int rate_per_minute) { return std::clamp(rate_per_minute / 40, 1, kMaxRateShares); }

int share_rate(int rate_per_minute, int share) {
  const int shares = rate_shares(rate_per_minute);
  if (share < 0 || share >= shares) return 0;
  return rate_per_minute / shares + (share < rate_per_minute % shares ? 1 : 0);
}

std::vector<ShareKey> shares_to_hand_over(const std::vector<HeldShare>& held, int fair_share) {
  std::vector<ShareKey> hand_over;
  int kept = 0;
  for (const auto& s : held)
    if (!s.releasing && ++kept > fair_share) hand_over.push_back({s.tenant_id, s.share});
  return hand_over;
}

std::vector<Instant> assumed_sends_after_takeover(const std::vector<std::chrono::milliseconds>& recent_sends,
                                                  int max_in_flight, Instant now) {
  std::vector<Instant> sends;
  if (recent_sends.empty()) return sends;
  for (auto age : recent_sends) sends.push_back(now - age);
  for (int i = 0; i < max_in_flight; ++i) sends.push_back(now);
  return sends;
}

bool renewal_confirms_holding(std::optional<std::int64_t> previous_epoch, std::int64_t epoch,
                              bool holds_earlier_leases) {
  if (!previous_epoch) return !holds_earlier_leases;
  return *previous_epoch == epoch;
}

}  // namespace callbackd::reconcile
