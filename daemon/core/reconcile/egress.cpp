#include "core/reconcile/egress.h"

#include <algorithm>

#include "core/error.h"

namespace callbackd::reconcile {

namespace {
// 429s of different tenants through one address this close together are the address's limit.
constexpr Duration kRefusalWindow = std::chrono::seconds{60};
}  // namespace

EgressLanes::EgressLanes(std::size_t addresses, std::optional<int> rate_per_minute, PacerTuning tuning)
    : rate_per_minute_(rate_per_minute) {
  CALLBACKD_ASSERT(addresses >= 1);
  CALLBACKD_ASSERT(!rate_per_minute || *rate_per_minute >= 1);
  lanes_.reserve(addresses);
  for (std::size_t i = 0; i < addresses; ++i) {
    Lane lane;
    if (rate_per_minute) lane.cap.emplace(*rate_per_minute, tuning);
    lanes_.push_back(std::move(lane));
  }
  // The first try_acquire starts at lane 0.
  last_used_ = addresses - 1;
}

Instant EgressLanes::next_slot(Instant now) const {
  std::optional<Instant> earliest;
  for (const auto& lane : lanes_) {
    const Instant at = lane.cap ? lane.cap->next_slot(now) : now;
    earliest = earliest ? std::min(*earliest, at) : at;
  }
  return *earliest;
}

std::optional<std::size_t> EgressLanes::try_acquire(Instant now) {
  for (std::size_t step = 1; step <= lanes_.size(); ++step) {
    const std::size_t i = (last_used_ + step) % lanes_.size();
    auto& cap = lanes_[i].cap;
    if (cap && !cap->try_acquire(now)) continue;
    last_used_ = i;
    return i;
  }
  return std::nullopt;
}

bool EgressLanes::on_rate_limited(std::size_t lane_index, const std::string& tenant, Instant now, Instant sent_at,
                                  std::optional<Duration> retry_after) {
  if (lane_index >= lanes_.size()) return false;
  Lane& lane = lanes_[lane_index];
  while (!lane.refusals.empty() && lane.refusals.front().first <= now - kRefusalWindow) lane.refusals.pop_front();
  const bool other_tenant = std::any_of(lane.refusals.begin(), lane.refusals.end(),
                                        [&](const auto& refusal) { return refusal.second != tenant; });
  // One entry per tenant is enough to tell "another tenant": keep the latest of each.
  std::erase_if(lane.refusals, [&](const auto& refusal) { return refusal.second == tenant; });
  lane.refusals.emplace_back(now, tenant);
  if (!other_tenant || !lane.cap) return false;
  lane.cap->on_rate_limited(now, sent_at, retry_after);
  return true;
}

std::optional<double> EgressLanes::effective_rate_per_minute(Instant now) const {
  if (!rate_per_minute_) return std::nullopt;
  double sum = 0;
  for (const auto& lane : lanes_) sum += lane.cap->effective_rate_per_minute(now);
  return sum;
}

double sending_rate_per_minute(double tenant_rate, std::optional<double> egress_rate, std::size_t tenants_sharing) {
  if (!egress_rate) return tenant_rate;
  return std::min(tenant_rate, *egress_rate / static_cast<double>(std::max<std::size_t>(1, tenants_sharing)));
}

}  // namespace callbackd::reconcile
