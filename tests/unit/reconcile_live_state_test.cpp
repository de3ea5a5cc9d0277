// The pure decisions behind reading back the live value (core/reconcile/live_state.h): the read
// pacer against a strict 1-second window, its 429 slow-down, adoption and drift verdicts, the
// drift checks' phases over the interval, and which tenants a drift claim asks for.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/reconcile/live_state.h"
#include "reconcile_test_support.h"

using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;
using namespace std::chrono_literals;

namespace {

// Every slot a busy reader gets in `for_how_long`, polling every 100 µs.
std::vector<Instant> busy_slots(ReadPacer& pacer, Instant from, Duration for_how_long) {
  std::vector<Instant> slots;
  for (Instant now = from; now < from + for_how_long; now += 100us)
    if (pacer.try_acquire(now)) slots.push_back(now);
  return slots;
}

// The most slots in any closed window [x, x + width].
std::size_t max_in_window(const std::vector<Instant>& sorted, Duration width) {
  std::size_t best = 0;
  for (std::size_t i = 0, j = 0; i < sorted.size(); ++i) {
    j = std::max(j, i);
    while (j < sorted.size() && sorted[j] - sorted[i] <= width) ++j;
    best = std::max(best, j - i);
  }
  return best;
}

}  // namespace

TEST_CASE("the read pacer never lets a strict 1-second window see more than the read rate", "[reconcile][live]") {
  for (const double rate : {1.0, 7.0, 50.0, 100.0, 2000.0}) {
    CAPTURE(rate);
    ReadPacer pacer(rate);
    const auto slots = busy_slots(pacer, kStart, 10s);
    CHECK(max_in_window(slots, 1s) <= static_cast<std::size_t>(rate));
    // And it uses the rate: at least 95% of it over 10 s.
    CHECK(static_cast<double>(slots.size()) >= rate * 10 * 0.95 - 1);
  }
}

TEST_CASE("a read counts from when it was written, as a set does", "[reconcile][live]") {
  // One read a second: the guard is the last read plus a second and the 20 ms margin.
  ReadPacer reported(1);
  ReadPacer unreported(1);
  for (ReadPacer* p : {&reported, &unreported}) REQUIRE(p->try_acquire(kStart));
  const Duration margin = 1s + 20ms;
  CHECK(unreported.next_slot(kStart) == kStart + margin);
  // The read waited 300 ms for a TLS handshake before it was written: counted from its slot,
  // the next read could reach WeChat Pay 0.7 s after it; counted from its write, never.
  reported.written(kStart, kStart + 300ms);
  CHECK(reported.next_slot(kStart) == kStart + 300ms + margin);
  // A write reported for a slot it never gave changes nothing.
  reported.written(kStart - 1h, kStart);
  CHECK(reported.next_slot(kStart) == kStart + 300ms + margin);
}

TEST_CASE("a 429 on a read halves the read rate, honours Retry-After, and recovers", "[reconcile][live]") {
  ReadPacer pacer(100);
  REQUIRE(pacer.try_acquire(kStart));
  const Instant t = kStart + 100ms;
  pacer.on_rate_limited(t, kStart, 2s);
  CHECK(pacer.effective_rate_per_second(t) == Approx(50));
  CHECK(pacer.next_slot(t) >= t + 2s);
  // A second 429 for a read sent before the decrease is the same overload: no further halving.
  pacer.on_rate_limited(t + 10ms, kStart, std::nullopt);
  CHECK(pacer.effective_rate_per_second(t + 10ms) == Approx(50));
  // Never below R/16, however many overloads.
  for (int i = 1; i <= 10; ++i) pacer.on_rate_limited(t + i * 1s, t + i * 1s - 1ms, std::nullopt);
  CHECK(pacer.effective_rate_per_second(t + 10s) >= 100.0 / 16 - 1e-9);
  // 5% of R back every 5 s after the last one: full rate again within 100 s.
  CHECK(pacer.effective_rate_per_second(t + 200s) == Approx(100));
}

TEST_CASE("adoption needs the desired notify_url byte for byte and a switch that pushes", "[reconcile][live]") {
  CHECK(should_adopt("https://a.example/x", std::nullopt, "https://a.example/x"));
  CHECK(should_adopt("https://a.example/x", true, "https://a.example/x"));
  // The switch cannot be read back: a desired `false` is always sent.
  CHECK_FALSE(should_adopt("https://a.example/x", false, "https://a.example/x"));
  CHECK_FALSE(should_adopt("https://a.example/x", true, "https://a.example/x/"));
  CHECK_FALSE(should_adopt("https://a.example/x", true, "https://A.example/x"));
  CHECK_FALSE(should_adopt("https://a.example/x", true, "a.example/x"));
  CHECK_FALSE(should_adopt("", true, ""));  // nothing set is never adopted
}

TEST_CASE("drift is a live notify_url other than the applied one, nothing set included", "[reconcile][live]") {
  CHECK_FALSE(is_drift("https://a.example/x", "https://a.example/x"));
  CHECK(is_drift("https://a.example/x", "https://b.example/x"));
  CHECK(is_drift("https://a.example/x", ""));
}

TEST_CASE("drift checks: each row at its own phase, once per interval, spread evenly", "[reconcile][live]") {
  const auto interval = std::chrono::duration_cast<Duration>(24h);
  const std::chrono::system_clock::time_point wall{std::chrono::seconds{1'796'500'000}};
  // 100,000 rows applied in the same second: their first checks spread over the interval, in
  // 24 hourly buckets each within 10% of the even share.
  std::map<long long, int> per_hour;
  for (int i = 0; i < 100'000; ++i) {
    const auto in = next_drift_check_in(std::to_string(1'711'000'000LL + i), interval, wall);
    REQUIRE(in >= 1s);
    REQUIRE(in <= interval + 1s);
    ++per_hour[std::chrono::duration_cast<std::chrono::hours>(in).count()];
  }
  for (const auto& [hour, n] : per_hour) {
    CAPTURE(hour);
    if (hour < 24) CHECK(std::abs(n - 100'000 / 24) <= 100'000 / 24 / 10);
  }
  // The same row, checked at its phase, is due again exactly one interval later.
  const std::string row = "1711000042";
  const auto first = next_drift_check_in(row, interval, wall);
  const auto at = wall + std::chrono::duration_cast<std::chrono::system_clock::duration>(first);
  CHECK(next_drift_check_in(row, interval, at) == interval);
  // Off: due at once, so that turning checks on finds every row due.
  CHECK(drift_check_due_in(row, Duration::zero(), wall) == Duration::zero());
}

TEST_CASE("a drift claim asks at most `budget` tenants in turn, sharing the budget", "[reconcile][live]") {
  const std::vector<std::string> tenants{"a", "b", "c", "d", "e"};
  auto plan = plan_drift_claim(tenants, 0, 100);
  CHECK(plan.tenants == tenants);
  CHECK(plan.per_tenant == 20);
  plan = plan_drift_claim(tenants, 3, 2);
  CHECK(plan.tenants == std::vector<std::string>{"d", "e"});
  CHECK(plan.per_tenant == 1);
  CHECK(plan.next_cursor == 0);
  plan = plan_drift_claim(tenants, plan.next_cursor, 2);
  CHECK(plan.tenants == std::vector<std::string>{"a", "b"});
  CHECK(plan_drift_claim({}, 0, 100).tenants.empty());
}
