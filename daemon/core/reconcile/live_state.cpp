#include "core/reconcile/live_state.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace callbackd::reconcile {

namespace {

constexpr double kDecreaseFactor = 0.5;
constexpr double kMinRateFraction = 1.0 / 16;
constexpr Duration kRecoveryInterval = std::chrono::seconds{5};
constexpr double kRecoveryStep = 0.05;

// FNV-1a: stable across builds and platforms (std::hash is not), so a row keeps its phase.
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

ReadPacer::ReadPacer(double rate_per_second, Duration arrival_jitter)
    : rate_(rate_per_second), jitter_(arrival_jitter), decreased_rate_(rate_per_second) {
  CALLBACKD_ASSERT(rate_per_second > 0 && std::isfinite(rate_per_second));
  CALLBACKD_ASSERT(arrival_jitter >= Duration::zero());
}

void ReadPacer::set_rate(double rate_per_second) {
  CALLBACKD_ASSERT(rate_per_second > 0 && std::isfinite(rate_per_second));
  rate_ = rate_per_second;
  decreased_rate_ = std::min(decreased_rate_, rate_);
  while (sent_.size() > window_limit()) sent_.pop_front();
}

std::size_t ReadPacer::window_limit() const { return static_cast<std::size_t>(std::max(1.0, std::floor(rate_))); }

double ReadPacer::effective_rate_per_second(Instant now) const {
  if (!decreased_) return rate_;
  if (now < recovery_from_) return decreased_rate_;
  const auto steps = static_cast<double>((now - recovery_from_) / kRecoveryInterval);
  return std::min(rate_, decreased_rate_ + steps * kRecoveryStep * rate_);
}

Duration ReadPacer::interval(Instant now) const {
  const std::chrono::duration<double> window = std::chrono::seconds{1} + jitter_;
  const double rate = effective_rate_per_second(now);
  // Evenly spaced at the effective rate, but never closer than the 1-second window allows.
  return ceil_duration(std::max(window / std::max(rate, 1e-9), window / static_cast<double>(window_limit())));
}

Instant ReadPacer::next_slot(Instant now) const {
  Instant slot = std::max(now, retry_until_);
  if (started_) slot = std::max(slot, tat_);
  // The exact guard: the window_limit()-th most recent slot plus a second (and the jitter).
  if (sent_.size() >= window_limit())
    slot = std::max(slot, sent_[sent_.size() - window_limit()] + std::chrono::seconds{1} + jitter_);
  return slot;
}

bool ReadPacer::try_acquire(Instant now) {
  if (next_slot(now) > now) return false;
  const Duration step = interval(now);
  const Instant base = started_ ? std::max(tat_, now - step / 2) : now;
  tat_ = base + step;
  started_ = true;
  sent_.push_back(now);
  if (sent_.size() > window_limit()) sent_.pop_front();
  return true;
}

void ReadPacer::on_rate_limited(Instant now, Instant sent_at, std::optional<Duration> retry_after) {
  if (retry_after && *retry_after > Duration::zero()) retry_until_ = std::max(retry_until_, now + *retry_after);
  const double current = effective_rate_per_second(now);
  const bool already_counted = decreased_ && sent_at < last_decrease_at_;
  decreased_rate_ = already_counted ? current : std::max(rate_ * kMinRateFraction, current * kDecreaseFactor);
  if (!already_counted) last_decrease_at_ = now;
  decreased_ = true;
  recovery_from_ = std::max(now, retry_until_);
  const Instant earliest = std::max(retry_until_, now + interval(now));
  tat_ = started_ ? std::max(tat_, earliest) : earliest;
  started_ = true;
}

bool should_adopt(std::string_view desired_notify_url, std::optional<bool> desired_switch,
                  std::string_view live_notify_url) {
  return !live_notify_url.empty() && live_notify_url == desired_notify_url && desired_switch.value_or(true);
}

bool is_drift(std::string_view applied_notify_url, std::string_view live_notify_url) {
  return applied_notify_url != live_notify_url;
}

Duration next_drift_check_in(std::string_view sub_mchid, Duration interval,
                             std::chrono::system_clock::time_point wall_now, Duration min_delay) {
  CALLBACKD_ASSERT(interval > Duration::zero());
  using std::chrono::milliseconds;
  const auto period = std::max<long long>(1, std::chrono::duration_cast<milliseconds>(interval).count());
  const auto phase = static_cast<long long>(fnv1a(sub_mchid) % static_cast<std::uint64_t>(period));
  const long long now_ms = std::chrono::duration_cast<milliseconds>(wall_now.time_since_epoch()).count();
  const long long min_ms = std::chrono::ceil<milliseconds>(min_delay).count();
  // The first instant >= now + min_delay whose offset in the period is the row's phase.
  const long long earliest = now_ms + min_ms;
  long long at = earliest - ((earliest % period) + period) % period + phase;
  if (at < earliest) at += period;
  return std::chrono::duration_cast<Duration>(milliseconds{at - now_ms});
}

Duration drift_check_due_in(std::string_view sub_mchid, Duration interval,
                            std::chrono::system_clock::time_point wall_now) {
  if (interval <= Duration::zero()) return Duration::zero();
  return next_drift_check_in(sub_mchid, interval, wall_now);
}

DriftClaimPlan plan_drift_claim(const std::vector<std::string>& tenants, std::size_t cursor, int budget) {
  DriftClaimPlan plan;
  if (tenants.empty() || budget <= 0) return plan;
  const std::size_t n = tenants.size();
  const std::size_t asked = std::min(n, static_cast<std::size_t>(budget));
  const std::size_t from = cursor % n;
  for (std::size_t i = 0; i < asked; ++i) plan.tenants.push_back(tenants[(from + i) % n]);
  plan.per_tenant = std::max(1, budget / static_cast<int>(asked));
  plan.next_cursor = (from + asked) % n;
  return plan;
}

}  // namespace callbackd::reconcile
