#include "sandbox/rate_window.h"

#include <algorithm>

namespace callbackd::sandbox {

std::size_t SlidingWindow::count(Instant now) {
  // An event at exactly now - width is outside: windows are half-open, (now - width, now].
  while (!events_.empty() && events_.front() <= now - width_) events_.pop_front();
  return events_.size();
}

bool CallerRateLimiter::allows(Instant now) {
  return w1_.count(now) + 1 <= limit_1s_ && w60_.count(now) + 1 <= limit_60s_;
}

void CallerRateLimiter::add(Instant now) {
  w1_.add(now);
  w60_.add(now);
}

void PeakTracker::record(Instant now) {
  // The densest window always ends at some request, so checking at each arrival finds the max.
  w1_.add(now);
  w60_.add(now);
  max_1s_ = std::max(max_1s_, w1_.count(now));
  max_60s_ = std::max(max_60s_, w60_.count(now));
}

WindowLimits limits_from_rate(std::uint32_t rate_per_minute) {
  // Integer arithmetic: rate * 3 / 120 == floor(rate / 60 * 1.5) without rounding surprises.
  const std::size_t per_1s = std::max<std::size_t>(1, static_cast<std::size_t>(rate_per_minute) * 3 / 120);
  return {per_1s, std::max<std::size_t>(1, rate_per_minute)};
}

}  // namespace callbackd::sandbox
