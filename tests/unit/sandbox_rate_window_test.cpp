// The sandbox's strict sliding windows, driven by injected time (no sleeping).
#include <catch2/catch.hpp>

#include "sandbox/rate_window.h"

using namespace callbackd::sandbox;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
const Instant t0{};
}

TEST_CASE("limits from a per-minute rate follow rate / 60 * 1.5, rounded down", "[sandbox][rate]") {
  CHECK(limits_from_rate(1000).per_1s == 25);
  CHECK(limits_from_rate(1000).per_60s == 1000);
  CHECK(limits_from_rate(60).per_1s == 1);
  CHECK(limits_from_rate(100).per_1s == 2);  // 2.5 -> 2
  CHECK(limits_from_rate(10).per_1s == 1);   // never 0
  CHECK(limits_from_rate(2000).per_1s == 50);
}

TEST_CASE("the 1 s window is exact and half-open over timestamps, not buckets", "[sandbox][rate]") {
  CallerRateLimiter limiter(3, 1000);
  // Three at 0.9 s; a bucketed counter would admit three more at 1.0 s (new bucket).
  for (int i = 0; i < 3; ++i) CHECK(limiter.try_admit(t0 + milliseconds(900)));
  CHECK_FALSE(limiter.try_admit(t0 + milliseconds(1000)));
  CHECK_FALSE(limiter.try_admit(t0 + milliseconds(1899)));
  // At exactly 1.9 s the three at 0.9 s leave the window (half-open).
  CHECK(limiter.try_admit(t0 + milliseconds(1900)));
}

TEST_CASE("the 60 s window holds even when every 1 s window has room", "[sandbox][rate]") {
  CallerRateLimiter limiter(25, 1000);
  int admitted = 0;
  // 20 per second for 60 s = 1200 attempts; only 1000 fit into the first 60 s.
  for (int ms = 0; ms < 60'000; ms += 50) admitted += limiter.try_admit(t0 + milliseconds(ms)) ? 1 : 0;
  CHECK(admitted == 1000);
  // The first admitted (t = 0) leaves the window at 60 s.
  CHECK(limiter.try_admit(t0 + seconds(60)));
}

TEST_CASE("refused requests consume no quota", "[sandbox][rate]") {
  CallerRateLimiter limiter(2, 1000);
  CHECK(limiter.try_admit(t0));
  CHECK(limiter.try_admit(t0));
  for (int i = 0; i < 100; ++i) CHECK_FALSE(limiter.try_admit(t0 + milliseconds(500)));
  CHECK(limiter.try_admit(t0 + seconds(1)));
}

TEST_CASE("a request must fit its caller's and its address's windows; refused, it uses neither's quota",
          "[sandbox][rate]") {
  CallerRateLimiter caller(25, 1000);
  CallerRateLimiter address(1, 5);  // "单ip 5/min": limits_from_rate(5)
  CHECK(limits_from_rate(5).per_1s == 1);
  auto admit = [&](Instant now) {
    if (!caller.allows(now) || !address.allows(now)) return false;
    caller.add(now);
    address.add(now);
    return true;
  };
  int admitted = 0;
  for (int ms = 0; ms < 60'000; ms += 100) admitted += admit(t0 + milliseconds(ms)) ? 1 : 0;
  CHECK(admitted == 5);  // the address's 60 s window
  // The caller's windows counted only those 5: another address's requests find room.
  for (int i = 0; i < 20; ++i) CHECK(caller.try_admit(t0 + milliseconds(60'000)));
}

TEST_CASE("a simulated hour at the limit never exceeds either window", "[sandbox][rate]") {
  CallerRateLimiter limiter(25, 1000);
  PeakTracker admitted_peaks;
  std::size_t admitted = 0;
  // An aggressive client: one attempt every 7 ms for an hour (514k attempts).
  for (std::int64_t ms = 0; ms < 3'600'000; ms += 7) {
    const Instant now = t0 + milliseconds(ms);
    if (limiter.try_admit(now)) {
      admitted_peaks.record(now);
      ++admitted;
    }
  }
  CHECK(admitted_peaks.max_1s() == 25);
  CHECK(admitted_peaks.max_60s() == 1000);
  CHECK(admitted == 60'000);  // exactly 1000 per minute over 60 minutes
}

TEST_CASE("the peak tracker finds the densest window", "[sandbox][rate]") {
  PeakTracker peaks;
  peaks.record(t0);
  peaks.record(t0 + milliseconds(999));
  peaks.record(t0 + milliseconds(1000));  // t0 has left (t - 1 s, t]
  CHECK(peaks.max_1s() == 2);
  for (int i = 0; i < 5; ++i) peaks.record(t0 + seconds(30));
  CHECK(peaks.max_1s() == 5);
  CHECK(peaks.max_60s() == 8);
  peaks.record(t0 + seconds(61));  // the first three have left the 60 s window
  CHECK(peaks.max_60s() == 8);
}
