// The pacer against a strict server, in simulated time: a checker slides 1-second and
// 60-second windows over the emitted slots (and over arrival times with jitter added) and
// asserts the limits of docs/product.md. No test here sleeps or reads a clock.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "core/reconcile/pacer.h"
#include "reconcile_test_support.h"

using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;
using namespace std::chrono_literals;

namespace {

// The most requests a strict server sees in any CLOSED window [x, x + window].
std::size_t max_in_closed_window(const std::vector<Instant>& sorted, Duration window) {
  std::size_t best = 0;
  std::size_t j = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (j < i) j = i;
    while (j < sorted.size() && sorted[j] - sorted[i] <= window) ++j;
    best = std::max(best, j - i);
  }
  return best;
}

// What the server sees when each request arrives a random [0, jitter) after its slot.
std::vector<Instant> arrivals(const std::vector<Instant>& slots, Duration jitter, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<Duration::rep> delay(0, jitter.count() - 1);
  std::vector<Instant> out;
  out.reserve(slots.size());
  for (auto s : slots) out.push_back(s + Duration{delay(rng)});
  std::sort(out.begin(), out.end());
  return out;
}

struct Traffic {
  Duration lateness = 0ms;  // the caller wakes up to this much after the slot (timer slack)
  double idle_chance = 0;   // per send: chance that the tenant then goes idle for a while
  Duration max_idle = 0ms;
};

// An always-busy (or sometimes idle) tenant taking every slot the pacer offers.
std::vector<Instant> run(Pacer& pacer, Instant from, Duration length, Traffic traffic, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<Duration::rep> late(0, std::max<Duration::rep>(traffic.lateness.count(), 1) - 1);
  std::uniform_real_distribution<double> coin(0, 1);
  std::uniform_int_distribution<Duration::rep> idle(0, std::max<Duration::rep>(traffic.max_idle.count(), 1));
  std::vector<Instant> sent;
  Instant now = from;
  const Instant end = from + length;
  std::size_t refused = 0;
  while (true) {
    now = pacer.next_slot(now);
    if (traffic.lateness > 0ms) now += Duration{late(rng)};
    if (now >= end) break;
    if (!pacer.try_acquire(now))
      ++refused;
    else
      sent.push_back(now);
    if (traffic.idle_chance > 0 && coin(rng) < traffic.idle_chance) now += Duration{idle(rng)};
  }
  CHECK(refused == 0);  // next_slot's promise: the slot it names can be taken
  return sent;
}

void check_limits(const std::vector<Instant>& sent, int rate, Duration jitter, std::uint64_t seed) {
  const auto per_second = static_cast<std::size_t>(one_second_limit(rate));
  const auto per_minute = static_cast<std::size_t>(rate);
  // On the slots themselves, with the margin.
  CHECK(spans_at_least(sent, per_second, 1s + jitter));
  CHECK(spans_at_least(sent, per_minute, 60s + jitter));
  // What the server sees, windows closed at both ends, arrival delays in [0, jitter).
  const auto seen = arrivals(sent, jitter, seed);
  CHECK(max_in_closed_window(seen, 1s) <= per_second);
  CHECK(max_in_closed_window(seen, 60s) <= per_minute);
}

}  // namespace

TEST_CASE("one_second_limit is floor(R / 60 * 1.5), at least one", "[pacer]") {
  const std::vector<std::pair<int, int>> table = {{1, 1},
                                                  {39, 1},
                                                  {40, 1},
                                                  {60, 1},
                                                  {79, 1},
                                                  {80, 2},
                                                  {100, 2},
                                                  {1000, 25},
                                                  {3000, 75},
                                                  {6000, 150},
                                                  {2147483647, 53687091}};
  for (auto [rate, limit] : table) {
    INFO("R = " << rate);
    CHECK(one_second_limit(rate) == limit);
  }
}

TEST_CASE("a busy tenant never exceeds the 1 s and 60 s limits (simulated, up to a million seconds)", "[pacer]") {
  const PacerTuning tuning;
  for (int rate : {1, 60, 100, 1000, 3000, 6000}) {
    // A million simulated seconds where that stays near two million sends.
    const auto seconds = std::min<long long>(1'000'000, 2'000'000LL * 60 / rate);
    for (Traffic traffic : {Traffic{}, Traffic{2ms, 0.001, 90s}, Traffic{5ms, 0.01, 3s}}) {
      INFO("R = " << rate << ", lateness = " << traffic.lateness.count() << " ns, simulated " << seconds << " s");
      Pacer pacer(rate, tuning);
      const auto sent = run(pacer, kStart, std::chrono::seconds{seconds}, traffic, 7);
      REQUIRE(sent.size() > 1);
      check_limits(sent, rate, tuning.arrival_jitter, 11);
    }
  }
}

TEST_CASE("a busy tenant uses at least 98% of its quota over 10 minutes", "[pacer]") {
  for (int rate : {1, 60, 100, 1000, 3000, 6000}) {
    for (Duration lateness : {Duration{0ms}, Duration{1ms}}) {
      // Timer slack of up to 1 ms is caught up; it costs no quota at these rates.
      if (rate == 6000 && lateness > 0ms) continue;  // T = 10 ms: 1 ms slack is 10% of a slot
      Pacer pacer(rate);
      const auto sent = run(pacer, kStart, 600s, Traffic{lateness, 0, 0ms}, 3);
      const double utilisation = static_cast<double>(sent.size()) / (rate * 10.0);
      INFO("R = " << rate << ", lateness = " << lateness.count() << " ns, sent " << sent.size());
      CHECK(utilisation >= 0.98);
      CHECK(utilisation <= 1.0);
      // And over every single minute, not just on average: a closed 60 s window starting at
      // any send (one that fits in the run) holds at least 98% of R.
      std::size_t fewest = sent.size();
      std::size_t j = 0;
      for (std::size_t i = 0; i < sent.size() && sent[i] + 60s < kStart + 600s; ++i) {
        while (j < sent.size() && sent[j] - sent[i] <= 60s) ++j;
        fewest = std::min(fewest, j - i);
      }
      CHECK(static_cast<double>(fewest) >= 0.98 * rate);
    }
  }
}

TEST_CASE("slots are smooth: no burst at the top of a second or a minute", "[pacer]") {
  for (int rate : {100, 1000, 6000}) {
    Pacer pacer(rate);
    const auto sent = run(pacer, kStart, 600s, Traffic{}, 5);
    // The 1-second limit is 1.5x the mean rate; a smooth pacer stays at the mean.
    INFO("R = " << rate);
    CHECK(max_in_closed_window(sent, 1s) <= static_cast<std::size_t>(rate / 60 + 1));
    const Duration interval = pacer.emission_interval(kStart);
    for (std::size_t i = 1; i < sent.size(); ++i) {
      if (sent[i] - sent[i - 1] < interval) {
        FAIL("gap below the emission interval at slot " << i);
      }
    }
  }
}

TEST_CASE("after an idle period the pacer allows at most a tiny burst", "[pacer]") {
  Pacer pacer(1000);
  REQUIRE(pacer.try_acquire(kStart));
  const Instant later = kStart + 1h;
  REQUIRE(pacer.try_acquire(later));
  // Catch-up of half an interval at most: the next slot is not `later` again.
  const Instant third = pacer.next_slot(later);
  CHECK(third > later);
  CHECK(third - later >= pacer.emission_interval(later) / 2 - 1ns);
}

TEST_CASE("429: multiplicative decrease, Retry-After honoured, additive recovery", "[pacer]") {
  PacerTuning tuning;
  Pacer pacer(1000, tuning);
  Instant now = kStart;
  for (int i = 0; i < 10; ++i) {
    now = pacer.next_slot(now);
    REQUIRE(pacer.try_acquire(now));
  }
  const Instant sent_at = now;
  CHECK_FALSE(pacer.throttled(now));
  CHECK(pacer.effective_rate_per_minute(now) == Approx(1000));

  now += 100ms;
  pacer.on_rate_limited(now, sent_at, Duration{10s});
  CHECK(pacer.throttled(now));
  CHECK(pacer.effective_rate_per_minute(now) == Approx(500));
  // No slot before Retry-After.
  CHECK(pacer.next_slot(now) >= now + 10s);
  CHECK_FALSE(pacer.try_acquire(now + 9s));

  // A second 429 for a request sent before the decrease is the same overload: no new halving.
  pacer.on_rate_limited(now + 1ms, sent_at, std::nullopt);
  CHECK(pacer.effective_rate_per_minute(now + 1ms) == Approx(500));

  // Recovery starts after Retry-After, in steps, never above R, never decreasing.
  const Instant retry_until = now + 10s;
  CHECK(pacer.effective_rate_per_minute(retry_until + tuning.recovery_interval - 1ns) == Approx(500));
  CHECK(pacer.effective_rate_per_minute(retry_until + tuning.recovery_interval) == Approx(550));
  double previous = 0;
  for (Duration t = 0s; t < 120s; t += 1s) {
    const double r = pacer.effective_rate_per_minute(retry_until + t);
    CHECK(r >= previous);
    CHECK(r <= 1000);
    previous = r;
  }
  CHECK(pacer.effective_rate_per_minute(retry_until + 60s) == Approx(1000));
  CHECK_FALSE(pacer.throttled(retry_until + 60s));

  // While throttled the spacing follows the effective rate.
  CHECK(pacer.emission_interval(retry_until) > pacer.emission_interval(retry_until + 60s));
}

TEST_CASE("429s for requests sent after the last decrease keep halving, down to a floor", "[pacer]") {
  PacerTuning tuning;
  Pacer pacer(1600, tuning);
  Instant now = kStart;
  // Each 429 is for a request sent after the previous decrease (a storm of refusals; the
  // slots themselves are not awaited, so that recovery never starts in between).
  for (int i = 0; i < 12; ++i) {
    now += 50ms;
    pacer.on_rate_limited(now, now - 10ms, std::nullopt);
  }
  // 1600 / 2^11 < 1: the floor is one a minute (a per-address limit of 5 a minute is reachable).
  CHECK(pacer.effective_rate_per_minute(now) == Approx(tuning.min_rate_per_minute));
  CHECK(tuning.min_rate_per_minute == 1);
  CHECK(pacer.throttled(now));
}

TEST_CASE("limits hold through 429s, Retry-After and rate changes", "[pacer]") {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> coin(0, 1);
  for (int rate : {60, 1000, 6000}) {
    Pacer pacer(rate);
    std::vector<Instant> sent;
    Instant now = kStart;
    const Instant end = kStart + 3600s;
    while (now < end) {
      now = pacer.next_slot(now);
      REQUIRE(pacer.try_acquire(now));
      sent.push_back(now);
      if (coin(rng) < 0.002) {
        pacer.on_rate_limited(now + 30ms, now, coin(rng) < 0.5 ? std::optional<Duration>(2s) : std::nullopt);
      }
    }
    INFO("R = " << rate);
    check_limits(sent, rate, PacerTuning{}.arrival_jitter, 13);
  }
}

TEST_CASE("lowering rate_per_minute applies at once and keeps the guarantee", "[pacer]") {
  Pacer pacer(6000);
  std::vector<Instant> sent;
  Instant now = kStart;
  while (now < kStart + 120s) {
    now = pacer.next_slot(now);
    REQUIRE(pacer.try_acquire(now));
    sent.push_back(now);
  }
  pacer.set_rate_per_minute(600);
  std::vector<Instant> after;
  while (now < kStart + 600s) {
    now = pacer.next_slot(now);
    REQUIRE(pacer.try_acquire(now));
    after.push_back(now);
  }
  // Everything sent after the change, together with what came before, respects the new limit
  // from the change on: the history is what the guards look at.
  std::vector<Instant> tail(sent.end() - 600, sent.end());
  const std::size_t first_after = tail.size();
  tail.insert(tail.end(), after.begin(), after.end());
  // Only windows that end in a slot given after the change: before it, the old limit held.
  auto spans_from_change = [&](std::size_t limit, Duration span) {
    for (std::size_t i = 0; i + limit < tail.size(); ++i) {
      if (i + limit >= first_after && tail[i + limit] - tail[i] < span) return false;
    }
    return true;
  };
  CHECK(spans_from_change(600, 60s + PacerTuning{}.arrival_jitter));
  CHECK(spans_from_change(15, 1s + PacerTuning{}.arrival_jitter));
}

TEST_CASE("the global cap: unlimited at 0, smooth at its rate otherwise", "[pacer][global]") {
  GlobalCap none(0);
  CHECK(none.unlimited());
  for (int i = 0; i < 1000; ++i) CHECK(none.try_acquire(kStart));

  GlobalCap cap(10);
  std::vector<Instant> sent;
  Instant now = kStart;
  while (now < kStart + 100s) {
    now = cap.next_slot(now);
    REQUIRE(cap.try_acquire(now));
    sent.push_back(now);
  }
  CHECK(sent.size() >= 999);
  CHECK(sent.size() <= 1001);
  CHECK(spans_at_least(sent, 1, 100ms));
  CHECK_FALSE(cap.try_acquire(now));
}

TEST_CASE("a new owner's pacer counts the previous owner's sends in its windows", "[reconcile][pacer]") {
  using namespace callbackd::reconcile;
  const Instant t0 = Instant{} + std::chrono::hours{1};
  Pacer pacer(60);  // one a second, 60 a minute
  // The previous instance sent 60 requests in the last 59 s: the minute is full.
  std::vector<Instant> earlier;
  for (int i = 0; i < 60; ++i) earlier.push_back(t0 - std::chrono::seconds{59} + std::chrono::seconds{i});
  pacer.assume_sent(earlier);
  CHECK(!pacer.try_acquire(t0));
  // Not before the oldest of them leaves the 60 s window (plus the jitter margin).
  const Instant next = pacer.next_slot(t0);
  CHECK(next >= t0 + std::chrono::seconds{1});
  CHECK(next <= t0 + std::chrono::seconds{2});
  // Without history, the first request would go at once.
  Pacer fresh(60);
  CHECK(fresh.try_acquire(t0));
}

namespace {

// A busy sender whose requests are written a random [0, write_delay) after their slot (signing,
// a pool wait, a TLS handshake), then reach the server within [0, jitter) of being written.
// Each write is reported to the pacer (when `report`) at the instant it happens, before any
// slot after it is given: events are taken in time order. Returns what the server saw, sorted.
std::vector<Instant> arrivals_with_write_delays(Pacer& pacer, int requests, Duration write_delay, bool report,
                                                std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<Duration::rep> delay(0, write_delay.count() - 1);
  std::uniform_int_distribution<Duration::rep> network(0, PacerTuning{}.arrival_jitter.count() - 1);
  std::vector<std::pair<Instant, Instant>> unwritten;  // (written at, slot)
  std::vector<Instant> seen;
  Instant now = kStart;
  auto write_due = [&](Instant until) {
    std::sort(unwritten.begin(), unwritten.end());
    while (!unwritten.empty() && unwritten.front().first <= until) {
      const auto [written_at, slot] = unwritten.front();
      unwritten.erase(unwritten.begin());
      if (report) pacer.written(slot, written_at);
      seen.push_back(written_at + Duration{network(rng)});
    }
  };
  for (int sent = 0; sent < requests;) {
    const Instant slot = pacer.next_slot(now);
    // A write due before that slot happens first, and may move it.
    if (!unwritten.empty() && std::min_element(unwritten.begin(), unwritten.end())->first <= slot) {
      now = std::max(now, std::min_element(unwritten.begin(), unwritten.end())->first);
      write_due(now);
      continue;
    }
    now = slot;
    REQUIRE(pacer.try_acquire(now));
    unwritten.emplace_back(now + Duration{delay(rng)}, now);
    ++sent;
  }
  write_due(Instant::max());
  std::sort(seen.begin(), seen.end());
  return seen;
}

}  // namespace

TEST_CASE("a request counts from when it was written: delays before the write need no margin", "[pacer]") {
  // At R = 60 the 1-second limit is one request: a request that waited 300 ms for a TLS
  // handshake, followed by one on a warm connection, would reach the server within a second
  // of each other if the guards counted from slots. Counted from writes, they never do.
  for (const int rate : {60, 100, 1000}) {
    for (const auto write_delay : {std::chrono::milliseconds{50}, std::chrono::milliseconds{300}}) {
      // Delays shorter than an interval (a write reported before the next slot is given).
      if (write_delay >= Pacer(rate).emission_interval(kStart)) continue;
      INFO("R = " << rate << ", writes up to " << write_delay.count() << " ms after their slot");
      const auto per_second = static_cast<std::size_t>(one_second_limit(rate));
      const auto per_minute = static_cast<std::size_t>(rate);
      Pacer pacer(rate);
      const auto seen = arrivals_with_write_delays(pacer, 3 * rate, write_delay, true, 5);
      CHECK(max_in_closed_window(seen, 1s) <= per_second);
      CHECK(max_in_closed_window(seen, 60s) <= per_minute);
    }
  }
  // The same delays, not reported: the one-a-second limit is broken (what the check guards against).
  Pacer unreported(60);
  const auto seen = arrivals_with_write_delays(unreported, 180, std::chrono::milliseconds{300}, false, 5);
  CHECK(max_in_closed_window(seen, 1s) > 1);
}

TEST_CASE("written(): a slot written after later ones keeps the history in order", "[pacer]") {
  Pacer pacer(60);  // one a second: the guard counts from the latest write
  const Instant first = pacer.next_slot(kStart);
  REQUIRE(pacer.try_acquire(first));
  const Instant second = pacer.next_slot(first);
  REQUIRE(pacer.try_acquire(second));
  const Duration margin = 1s + PacerTuning{}.arrival_jitter;
  CHECK(pacer.next_slot(second) - second >= margin);
  CHECK(pacer.next_slot(second) - second < margin + 1ms);
  // The first request waited for a connection and was written after the second one: the
  // next slot is a second (and the margin) after ITS write, the latest.
  const Instant first_written = second + 10ms;
  pacer.written(first, first_written);
  CHECK(pacer.next_slot(second) == first_written + margin);
  // Unknown slots and writes before their slot change nothing.
  pacer.written(kStart - 1h, kStart);
  pacer.written(second, second - 1ms);
  CHECK(pacer.next_slot(second) == first_written + margin);
}
