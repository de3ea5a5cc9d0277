#include "core/reconcile/egress.h"

#include <algorithm>

#include "core/error.h"
#include "core/reconcile/learned_rates.h"

namespace callbackd::reconcile {

using namespace std::chrono_literals;

namespace {
// 429s of different tenants through one address this close together are the address's limit.
constexpr Duration kRefusalWindow = std::chrono::seconds{60};
// A learned cap is raised after this long without a refusal read as the address's.
constexpr Duration kProbeInterval = std::chrono::minutes{5};
constexpr double kProbeStep = 0.10;

void forget_before(std::deque<Instant>& times, Instant now) {
  while (!times.empty() && times.front() <= now - kRefusalWindow) times.pop_front();
}
}  // namespace

EgressLanes::EgressLanes(std::size_t addresses, std::optional<int> rate_per_minute, Learn learn, PacerTuning tuning)
    : tuning_(tuning), learn_(learn), rate_per_minute_(rate_per_minute) {
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

Instant EgressLanes::next_slot(Instant now) {
  std::optional<Instant> earliest;
  for (auto& lane : lanes_) {
    if (lane.learned) probe_upwards(lane, now);
    const Instant at = lane.cap ? lane.cap->next_slot(now) : now;
    earliest = earliest ? std::min(*earliest, at) : at;
  }
  return *earliest;
}

std::optional<std::size_t> EgressLanes::try_acquire(Instant now) {
  for (std::size_t step = 1; step <= lanes_.size(); ++step) {
    const std::size_t i = (last_used_ + step) % lanes_.size();
    Lane& lane = lanes_[i];
    if (lane.learned) probe_upwards(lane, now);
    if (lane.cap && !lane.cap->try_acquire(now)) continue;
    if (learn_ == Learn::yes && (!lane.cap || lane.learned)) {
      if (!lane.first_sent) lane.first_sent = now;
      lane.sent.push_back(now);
      forget_before(lane.sent, now);
    }
    last_used_ = i;
    return i;
  }
  return std::nullopt;
}

void EgressLanes::written(std::size_t lane, Instant slot, Instant written_at) {
  CALLBACKD_ASSERT(lane < lanes_.size());
  if (lanes_[lane].cap) lanes_[lane].cap->written(slot, written_at);
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
  if (lane.cap && !lane.learned) {
    if (!other_tenant) return false;
    lane.cap->on_rate_limited(now, sent_at, retry_after);
    return true;
  }
  if (learn_ == Learn::no) return false;
  lane.refused.push_back(now);
  forget_before(lane.refused, now);
  forget_before(lane.sent, now);
  if (!other_tenant && !lane.learned) return false;
  // What the server let through is what it counts: hold that. Requests still unanswered
  // count as let through, so a guess over a short history errs high and the next 429 (read
  // as the address's from now on) corrects it, never upwards.
  const int learned = learned_cap(lane, now);
  if (!lane.cap)
    lane.cap.emplace(learned, tuning_);
  else if (learned < lane.cap->rate_per_minute())
    lane.cap->set_rate_per_minute(learned);
  lane.learned = true;
  lane.learned_at = now;
  return true;
}

void EgressLanes::probe_upwards(Lane& lane, Instant now) {
  if (now - lane.learned_at < kProbeInterval) return;
  // Every step whose time came (a quiet lane is looked at seldom), at most 20.
  const auto steps = std::min<Duration::rep>(20, (now - lane.learned_at) / kProbeInterval);
  lane.learned_at += steps * kProbeInterval;
  int rate = lane.cap->rate_per_minute();
  for (Duration::rep i = 0; i < steps; ++i)
    rate = std::min(1'000'000, std::max(rate + 1, static_cast<int>(rate * (1 + kProbeStep))));
  lane.cap->set_rate_per_minute(rate);
  lane.cap->respace(now);
}

int EgressLanes::learned_cap(const Lane& lane, Instant now) {
  // Both hold the last 60 s only (forget_before, just called): counting is their size.
  const double let_through =
      std::max(0.0, static_cast<double>(lane.sent.size()) - static_cast<double>(lane.refused.size()));
  const Duration seen = lane.first_sent ? now - *lane.first_sent : Duration::zero();
  const Duration history = std::clamp<Duration>(seen, 1s, kRefusalWindow);
  const double per_minute = let_through * (std::chrono::duration<double>(kRefusalWindow) / history);
  return std::clamp(static_cast<int>(per_minute), 1, 1'000'000);
}

std::map<std::size_t, double> EgressLanes::learned(Instant now) const {
  std::map<std::size_t, double> out;
  for (std::size_t i = 0; i < lanes_.size(); ++i) {
    const Lane& lane = lanes_[i];
    if (!lane.cap) continue;
    const double rate = lane.cap->effective_rate_per_minute(now);
    if (lane.learned || rate < static_cast<double>(lane.cap->rate_per_minute())) out[i] = rate;
  }
  return out;
}

void EgressLanes::restore(std::size_t lane_index, double learned_rate, Duration age, Instant now) {
  if (lane_index >= lanes_.size()) return;
  Lane& lane = lanes_[lane_index];
  const std::optional<double> configured = rate_per_minute_ ? std::optional<double>(*rate_per_minute_) : std::nullopt;
  const auto rate = restored_rate(learned_rate, configured, age);
  if (!rate) return;  // aged out: uncapped again
  if (lane.cap && !lane.learned) {
    lane.cap->resume_at(*rate, now);
  } else {
    if (learn_ == Learn::no) return;
    lane.cap.emplace(std::clamp(static_cast<int>(*rate), 1, 1'000'000), tuning_);
    lane.learned = true;
    lane.learned_at = now;
  }
  // The process before this one may have filled the server's window for this address just
  // now (a restart takes seconds): assume it sent at this rate over the last minute, so that
  // this one continues at the rate instead of adding a burst to a full window.
  const int assumed = std::clamp(static_cast<int>(*rate), 1, 100'000);
  std::vector<Instant> sends;
  sends.reserve(static_cast<std::size_t>(assumed));
  for (int i = 0; i < assumed; ++i) sends.push_back(now - kRefusalWindow * i / assumed);
  lane.cap->assume_sent(std::move(sends));
}

std::optional<double> EgressLanes::effective_rate_per_minute(Instant now) const {
  double sum = 0;
  for (const auto& lane : lanes_) {
    if (!lane.cap) return std::nullopt;  // one lane without a cap: no limit on the whole
    sum += lane.cap->effective_rate_per_minute(now);
  }
  return sum;
}

double sending_rate_per_minute(double tenant_rate, std::optional<double> egress_rate, std::size_t tenants_sharing) {
  if (!egress_rate) return tenant_rate;
  return std::min(tenant_rate, *egress_rate / static_cast<double>(std::max<std::size_t>(1, tenants_sharing)));
}

}  // namespace callbackd::reconcile
