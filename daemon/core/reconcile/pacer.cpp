#include "core/reconcile/pacer.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

#include "core/error.h"

namespace callbackd::reconcile {

namespace {
constexpr std::chrono::duration<double> kShortWindow{1.0};
constexpr std::chrono::duration<double> kLongWindow{60.0};
}  // namespace

int one_second_limit(int rate_per_minute) {
  CALLBACKD_ASSERT(rate_per_minute >= 1);
  // R / 60 * 1.5 == R * 3 / 120; in 64 bits so that no int rate can overflow.
  const long long limit = static_cast<long long>(rate_per_minute) * 3 / 120;
  return static_cast<int>(std::max(1LL, limit));
}

Pacer::Pacer(int rate_per_minute, PacerTuning tuning)
    : rate_per_minute_(rate_per_minute),
      one_second_limit_(one_second_limit(rate_per_minute)),
      tuning_(tuning),
      decreased_rate_(rate_per_minute) {
  CALLBACKD_ASSERT(tuning_.arrival_jitter >= Duration::zero());
  CALLBACKD_ASSERT(tuning_.decrease_factor > 0 && tuning_.decrease_factor < 1);
  CALLBACKD_ASSERT(tuning_.min_rate_per_minute > 0);
  CALLBACKD_ASSERT(tuning_.recovery_interval > Duration::zero());
  CALLBACKD_ASSERT(tuning_.recovery_step_fraction > 0);
}

void Pacer::set_rate_per_minute(int rate_per_minute) {
  CALLBACKD_ASSERT(rate_per_minute >= 1);
  rate_per_minute_ = rate_per_minute;
  one_second_limit_ = one_second_limit(rate_per_minute);
  decreased_rate_ = std::min(decreased_rate_, static_cast<double>(rate_per_minute));
  while (sent_.size() > static_cast<std::size_t>(rate_per_minute_)) sent_.pop_front();
}

Duration Pacer::interval_at_rate(double rate_per_minute) const {
  const std::chrono::duration<double> jitter = tuning_.arrival_jitter;
  const auto by_minute = (kLongWindow + jitter) / rate_per_minute;
  const auto by_second = (kShortWindow + jitter) / static_cast<double>(one_second_limit_);
  return ceil_duration(std::max(by_minute, by_second));
}

Duration Pacer::emission_interval(Instant now) const { return interval_at_rate(effective_rate_per_minute(now)); }

double Pacer::effective_rate_per_minute(Instant now) const {
  const double configured = rate_per_minute_;
  if (!decreased_) return configured;
  if (now < recovery_from_) return decreased_rate_;
  const auto steps = static_cast<double>((now - recovery_from_) / tuning_.recovery_interval);
  return std::min(configured, decreased_rate_ + steps * tuning_.recovery_step_fraction * configured);
}

bool Pacer::throttled(Instant now) const {
  return now < retry_until_ || effective_rate_per_minute(now) < static_cast<double>(rate_per_minute_);
}

Instant Pacer::guard_slot() const {
  // The exact window guards: the (limit+1)-th most recent slot bounds the next one.
  Instant earliest{};
  const std::size_t n = sent_.size();
  const auto short_limit = static_cast<std::size_t>(one_second_limit_);
  const auto long_limit = static_cast<std::size_t>(rate_per_minute_);
  if (n >= short_limit) {
    earliest = std::max(earliest, sent_[n - short_limit] + std::chrono::seconds{1} + tuning_.arrival_jitter);
  }
  if (n >= long_limit) {
    earliest = std::max(earliest, sent_[n - long_limit] + std::chrono::seconds{60} + tuning_.arrival_jitter);
  }
  return earliest;
}

Instant Pacer::next_slot(Instant now) const {
  Instant slot = std::max(now, retry_until_);
  if (started_) slot = std::max(slot, tat_);
  return std::max(slot, guard_slot());
}

bool Pacer::try_acquire(Instant now) {
  if (next_slot(now) > now) return false;
  const Duration interval = emission_interval(now);
  // Let the schedule lag `now` by up to half an interval, so a caller woken late keeps its
  // slot instead of pushing every later slot back by the lateness.
  const Instant base = started_ ? std::max(tat_, now - interval / 2) : now;
  tat_ = base + interval;
  started_ = true;
  sent_.push_back(now);
  if (sent_.size() > static_cast<std::size_t>(rate_per_minute_)) sent_.pop_front();
  return true;
}

void count_from_write(std::deque<Instant>& sent, Instant slot, Instant written_at) {
  if (written_at <= slot) return;
  // From the back: the slot is almost always among the last few.
  const auto found = std::find(sent.rbegin(), sent.rend(), slot);
  if (found == sent.rend()) return;
  auto i = static_cast<std::size_t>(std::distance(sent.begin(), found.base())) - 1;
  sent[i] = written_at;
  // Keep the history sorted (the guards read it by rank): move it past the slots given after
  // it but written before it.
  for (; i + 1 < sent.size() && sent[i + 1] < sent[i]; ++i) std::swap(sent[i], sent[i + 1]);
}

void Pacer::written(Instant slot, Instant written_at) { count_from_write(sent_, slot, written_at); }

void Pacer::assume_sent(std::vector<Instant> sends) {
  if (sends.empty()) return;
  sends.insert(sends.end(), sent_.begin(), sent_.end());
  std::sort(sends.begin(), sends.end());
  const std::size_t keep = std::min(sends.size(), static_cast<std::size_t>(rate_per_minute_));
  sent_.assign(sends.end() - static_cast<std::ptrdiff_t>(keep), sends.end());
  // The smooth schedule continues one interval after the latest of them.
  const Instant after_last = sent_.back() + interval_at_rate(decreased_ ? decreased_rate_ : rate_per_minute_);
  tat_ = started_ ? std::max(tat_, after_last) : after_last;
  started_ = true;
}

void Pacer::on_rate_limited(Instant now, Instant sent_at, std::optional<Duration> retry_after) {
  if (retry_after && *retry_after > Duration::zero()) retry_until_ = std::max(retry_until_, now + *retry_after);

  const double configured = rate_per_minute_;
  const double current = effective_rate_per_minute(now);
  const bool already_counted = decreased_ && sent_at < last_decrease_at_;
  decreased_rate_ =
      already_counted ? current
                      : std::max(std::min(configured, tuning_.min_rate_per_minute), current * tuning_.decrease_factor);
  if (!already_counted) last_decrease_at_ = now;
  decreased_ = true;
  // Recovery counts from the end of the Retry-After (any step earned so far is folded into
  // decreased_rate_ above, so moving the start never raises the rate).
  recovery_from_ = std::max(now, retry_until_);

  // No slot before the Retry-After, nor sooner than one interval at the new rate.
  const Instant earliest = std::max(retry_until_, now + interval_at_rate(decreased_rate_));
  tat_ = started_ ? std::max(tat_, earliest) : earliest;
  started_ = true;
}

void Pacer::respace(Instant now) {
  if (!started_ || sent_.empty()) return;
  tat_ = std::min(tat_, std::max(sent_.back() + emission_interval(now), retry_until_));
}

void Pacer::resume_at(double rate_per_minute, Instant now) {
  const double configured = rate_per_minute_;
  if (!(rate_per_minute < configured)) return;
  decreased_rate_ = std::max(std::min(configured, tuning_.min_rate_per_minute), rate_per_minute);
  decreased_ = true;
  last_decrease_at_ = now;
  recovery_from_ = std::max(now, retry_until_);
}

GlobalCap::GlobalCap(double rate_per_second) {
  CALLBACKD_ASSERT(rate_per_second >= 0 && std::isfinite(rate_per_second));
  if (rate_per_second > 0) interval_ = ceil_duration(std::chrono::duration<double>(1.0 / rate_per_second));
}

Instant GlobalCap::next_slot(Instant now) const {
  if (unlimited() || !started_) return now;
  return std::max(now, tat_);
}

bool GlobalCap::try_acquire(Instant now) {
  if (next_slot(now) > now) return false;
  if (unlimited()) return true;
  const Instant base = started_ ? std::max(tat_, now - interval_ / 2) : now;
  tat_ = base + interval_;
  started_ = true;
  return true;
}

}  // namespace callbackd::reconcile
