// Exact sliding-window counting for the sandbox's rate limiter and its pacing statistics.
// Pure: time is a parameter (tests run hours of simulated traffic without sleeping).
//
// "Exact" means: a request at instant t is compared with the requests in (t - width, t], i.e.
// every window of `width` that could be drawn over the request timestamps, not fixed buckets
// (a bucketed counter lets 2x the limit through across a bucket edge; WeChat Pay's limiter is
// treated here as the strictest possible one, so that a client that passes here passes there).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>

namespace callbackd::sandbox {

using Instant = std::chrono::steady_clock::time_point;

// Timestamps of events in the last `width`. Memory is bounded by the events of one window.
class SlidingWindow {
 public:
  explicit SlidingWindow(std::chrono::nanoseconds width) : width_(width) {}
  // Events in (now - width, now]. `now` must not go backwards (steady clock).
  std::size_t count(Instant now);
  void add(Instant now) { events_.push_back(now); }
  std::chrono::nanoseconds width() const { return width_; }

 private:
  std::chrono::nanoseconds width_;
  std::deque<Instant> events_;
};

// Per calling merchant (and per source address, limits.per_source_address_per_minute): admits a request only if,
// counting it, neither the 1-second nor the 60-second window holds more than its limit. Refused requests are not
// counted (they consume no quota; a client hammering with refused requests is still refused only by its admitted ones).
class CallerRateLimiter {
 public:
  CallerRateLimiter(std::size_t limit_1s, std::size_t limit_60s)
      : limit_1s_(limit_1s), limit_60s_(limit_60s), w1_(std::chrono::seconds(1)), w60_(std::chrono::seconds(60)) {}
  bool try_admit(Instant now) {
    if (!allows(now)) return false;
    add(now);
    return true;
  }
  // Whether a request at `now` fits both windows, and counting it: for a request that must
  // fit two limiters (its caller's and its source address's) before it uses either's quota.
  bool allows(Instant now);
  void add(Instant now);
  void set_limits(std::size_t limit_1s, std::size_t limit_60s) {
    limit_1s_ = limit_1s;
    limit_60s_ = limit_60s;
  }

 private:
  std::size_t limit_1s_;
  std::size_t limit_60s_;
  SlidingWindow w1_;
  SlidingWindow w60_;
};

// The highest number of requests (all of them, admitted or not) seen in any 1 s and any 60 s
// window: what a pacing test compares with rate_per_minute / 60 * 1.5 and rate_per_minute.
class PeakTracker {
 public:
  PeakTracker() : w1_(std::chrono::seconds(1)), w60_(std::chrono::seconds(60)) {}
  void record(Instant now);
  std::size_t max_1s() const { return max_1s_; }
  std::size_t max_60s() const { return max_60s_; }

 private:
  SlidingWindow w1_;
  SlidingWindow w60_;
  std::size_t max_1s_{0};
  std::size_t max_60s_{0};
};

// The defaults WeChat Pay documents for this endpoint, from a per-minute rate:
// 1 s window = floor(rate / 60 * 1.5) (at least 1), 60 s window = rate. 1000/min -> 25 and 1000.
struct WindowLimits {
  std::size_t per_1s;
  std::size_t per_60s;
};
WindowLimits limits_from_rate(std::uint32_t rate_per_minute);

}  // namespace callbackd::sandbox
