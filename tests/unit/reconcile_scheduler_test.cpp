// The fair scheduler in simulated time: an event loop plays the daemon's run loop (dispatch,
// completions after a latency, due counts) against FairScheduler. Nothing sleeps.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <map>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "core/reconcile/scheduler.h"
#include "reconcile_test_support.h"

using namespace callbackd;
using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;
using wechatpay::OutcomeKind;
using namespace std::chrono_literals;

namespace {

struct SimTenant {
  TenantSettings settings;
  std::size_t rows = 0;
  Duration latency = 50ms;
  OutcomeKind outcome = OutcomeKind::applied;  // what every request of this tenant comes back with
  std::vector<Instant> sent;
  std::vector<bool> probes;
};

SimTenant make_tenant(TenantSettings settings, std::size_t rows, Duration latency = 50ms,
                      OutcomeKind outcome = OutcomeKind::applied) {
  SimTenant t;
  t.settings = settings;
  t.rows = rows;
  t.latency = latency;
  t.outcome = outcome;
  return t;
}

struct Completion {
  Instant at;
  std::string tenant_id;
  bool probe;
  Instant sent_at;
  bool endpoint_probe = false;
  bool operator>(const Completion& other) const { return at > other.at; }
};

ReconcilerConfig config(double global_rate_per_second = 0, int max_in_flight_per_tenant = 4,
                        Millis probe_interval = Millis{300'000}) {
  ReconcilerConfig c;
  c.global_rate_per_second = global_rate_per_second;
  c.max_in_flight_per_tenant = max_in_flight_per_tenant;
  c.tenant_probe_interval = probe_interval;
  return c;
}

// Runs until `end` or until nothing more can happen. Rows whose attempt was not settled
// (anything but applied / rejected) go back to the tenant's queue at once.
void simulate(FairScheduler& scheduler, std::map<std::string, SimTenant>& tenants, Instant end) {
  for (auto& [id, t] : tenants) {
    scheduler.upsert_tenant(id, t.settings);
    scheduler.set_due_rows(id, t.rows, std::nullopt);
  }
  std::priority_queue<Completion, std::vector<Completion>, std::greater<>> in_flight;
  Instant now = kStart;
  while (now < end) {
    while (!in_flight.empty() && in_flight.top().at <= now) {
      const Completion c = in_flight.top();
      in_flight.pop();
      SimTenant& t = tenants.at(c.tenant_id);
      FinishedAttempt attempt = finished(t.outcome, c.sent_at, c.probe);
      attempt.error_code = t.outcome == OutcomeKind::tenant_error ? "SIGN_ERROR" : "";
      scheduler.on_finished(c.tenant_id, attempt, c.at);
      if (t.outcome != OutcomeKind::applied && t.outcome != OutcomeKind::rejected) {
        ++t.rows;
        scheduler.set_due_rows(c.tenant_id, t.rows, std::nullopt);
      }
    }
    const SchedulerDecision d = scheduler.next(now);
    if (d.dispatch) {
      SimTenant& t = tenants.at(d.dispatch->tenant_id);
      REQUIRE(t.rows > 0);
      --t.rows;
      t.sent.push_back(now);
      t.probes.push_back(d.dispatch->probe);
      in_flight.push({now + t.latency, d.dispatch->tenant_id, d.dispatch->probe, now});
      continue;
    }
    std::optional<Instant> wake = d.wake_at;
    if (!in_flight.empty()) wake = wake ? std::min(*wake, in_flight.top().at) : in_flight.top().at;
    if (!wake) break;
    REQUIRE(*wake > now);  // progress: a wake-up in the past would spin
    now = *wake;
  }
}

std::size_t sent_between(const std::vector<Instant>& sent, Instant from, Instant to) {
  std::size_t n = 0;
  for (auto t : sent) n += (t >= from && t < to) ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("a tenant with 10 rows goes at its own full rate while one with 100,000 is busy", "[scheduler]") {
  FairScheduler scheduler(config());
  std::map<std::string, SimTenant> tenants;
  tenants["big"] = make_tenant({TenantMode::apply, 1000, 4}, 100'000);
  tenants["small"] = make_tenant({TenantMode::apply, 1000, 4}, 10);
  simulate(scheduler, tenants, kStart + 600s);

  const auto& small = tenants["small"].sent;
  REQUIRE(small.size() == 10);
  // Its k-th row goes out exactly at its k-th pacer slot: nothing of the big one's backlog
  // is in the way.
  const Duration interval = scheduler.pacer("small")->emission_interval(kStart);
  for (std::size_t k = 0; k < small.size(); ++k) {
    INFO("row " << k);
    CHECK(small[k] == kStart + interval * static_cast<long>(k));
  }
  // And the big one still used its own quota in full meanwhile.
  const auto& big = tenants["big"].sent;
  CHECK(sent_between(big, kStart, kStart + 600s) >= 9800);
  CHECK(sent_between(big, kStart, kStart + 600s) <= 10'000);
  // Through the scheduler, the strict server's limits still hold.
  CHECK(spans_at_least(big, 1000, 60s + PacerTuning{}.arrival_jitter));
  CHECK(spans_at_least(big, 25, 1s + PacerTuning{}.arrival_jitter));
}

TEST_CASE("fifty small tenants all finish at their own rate beside a huge backlog", "[scheduler]") {
  FairScheduler scheduler(config());
  std::map<std::string, SimTenant> tenants;
  tenants["huge"] = make_tenant({TenantMode::apply, 6000, 4}, 1'000'000, 20ms);
  for (int i = 0; i < 50; ++i) tenants["small-" + std::to_string(i)] = make_tenant({TenantMode::apply, 1000, 4}, 10);
  simulate(scheduler, tenants, kStart + 60s);
  const Duration interval = scheduler.pacer("small-0")->emission_interval(kStart);
  for (const auto& [id, t] : tenants) {
    if (id == "huge") continue;
    INFO(id);
    REQUIRE(t.sent.size() == 10);
    CHECK(t.sent.back() == kStart + interval * 9);
  }
  CHECK(tenants["huge"].sent.size() >= 5990);
}

TEST_CASE("paused, observing and broken tenants consume nothing of the others", "[scheduler]") {
  // The global cap is tight (10/s), so any slot taken by a tenant that cannot send would show.
  FairScheduler scheduler(config(10, 4, Millis{60'000}));
  std::map<std::string, SimTenant> tenants;
  tenants["healthy"] = make_tenant({TenantMode::apply, 6000, 4}, 100'000);
  tenants["operator-paused"] = make_tenant({TenantMode::paused, 6000, 4}, 100'000);
  tenants["observing"] = make_tenant({TenantMode::observe, 6000, 4}, 100'000);
  tenants["broken"] = make_tenant({TenantMode::apply, 6000, 4}, 100'000, 50ms, OutcomeKind::tenant_error);
  simulate(scheduler, tenants, kStart + 600s);

  CHECK(tenants["operator-paused"].sent.empty());
  CHECK(tenants["observing"].sent.empty());
  // The broken tenant: the requests before its first answer (in-flight limit 4, at most one
  // global slot per 100 ms shared with the healthy one), then one probe at a time backing off
  // from 15 s (jittered down to 13.5 s here) to one a minute: 13.5 s, +27 s, then +60 s.
  const auto& broken = tenants["broken"];
  std::size_t before_pause = 0;
  for (bool probe : broken.probes) before_pause += probe ? 0 : 1;
  CHECK(before_pause <= 4);
  std::vector<Instant> probes;
  for (std::size_t i = 0; i < broken.sent.size(); ++i) {
    if (broken.probes[i]) probes.push_back(broken.sent[i]);
  }
  REQUIRE(probes.size() >= 3);
  CHECK(probes[0] - broken.sent[0] <= 15s);
  CHECK(probes[1] - probes[0] >= 27s);
  CHECK(probes[1] - probes[0] < 60s);
  for (std::size_t i = 2; i < probes.size(); ++i) CHECK(probes[i] - probes[i - 1] >= 60s);
  CHECK(probes.size() >= 10);
  CHECK(probes.size() <= 11);
  REQUIRE(scheduler.tenant_state("broken")->paused_by_error());

  // The healthy tenant got every global slot the others did not use: 10/s for 600 s.
  const std::size_t healthy = tenants["healthy"].sent.size();
  CHECK(healthy + broken.sent.size() >= 5990);
  CHECK(healthy + broken.sent.size() <= 6001);
}

TEST_CASE("a slow tenant (in-flight saturated) never delays a healthy one", "[scheduler]") {
  FairScheduler scheduler(config(0, 2));
  std::map<std::string, SimTenant> tenants;
  tenants["slow"] = make_tenant({TenantMode::apply, 6000, 8}, 100'000, 30s);  // every answer takes 30 s
  tenants["healthy"] = make_tenant({TenantMode::apply, 3000, 8}, 100'000, 20ms);
  simulate(scheduler, tenants, kStart + 300s);

  // In-flight bound: min(8, 2) = 2 at a time, 30 s each.
  CHECK(tenants["slow"].sent.size() <= 2 * 10 + 2);
  CHECK(scheduler.tenant_state("slow")->in_flight_limit() == 2);
  // The healthy tenant: 3000 a minute for 5 minutes (>= 98% of it).
  CHECK(tenants["healthy"].sent.size() >= 14'700);
  CHECK(tenants["healthy"].sent.size() <= 15'000);
}

TEST_CASE("the global cap is split evenly among ready tenants, whatever their backlogs", "[scheduler]") {
  FairScheduler scheduler(config(30));
  std::map<std::string, SimTenant> tenants;
  tenants["a"] = make_tenant({TenantMode::apply, 6000, 4}, 1'000'000);
  tenants["b"] = make_tenant({TenantMode::apply, 6000, 4}, 100'000);
  tenants["c"] = make_tenant({TenantMode::apply, 6000, 4}, 5'000);
  simulate(scheduler, tenants, kStart + 100s);

  // 30/s for 100 s, 1000 each (round robin: never more than one apart).
  const auto a = tenants["a"].sent.size();
  const auto b = tenants["b"].sent.size();
  const auto c = tenants["c"].sent.size();
  CHECK(a + b + c >= 2999);
  CHECK(a + b + c <= 3001);
  CHECK(std::max({a, b, c}) - std::min({a, b, c}) <= 1);

  // A tenant slower than its share leaves the rest to the others.
  FairScheduler scheduler2(config(30));
  std::map<std::string, SimTenant> tenants2;
  tenants2["fast1"] = make_tenant({TenantMode::apply, 6000, 4}, 1'000'000);
  tenants2["fast2"] = make_tenant({TenantMode::apply, 6000, 4}, 1'000'000);
  tenants2["slow-rate"] = make_tenant({TenantMode::apply, 60, 4}, 1'000'000);  // about 1/s
  simulate(scheduler2, tenants2, kStart + 100s);
  // Its own pace (one per 1.02 s) plus, per slot, the wait for its turn at the global cap
  // (at most three global slots, 100 ms): at least 100 s / 1.12 s.
  const auto slow = tenants2["slow-rate"].sent.size();
  CHECK(slow >= 89);
  CHECK(slow <= 99);
  const auto f1 = tenants2["fast1"].sent.size();
  const auto f2 = tenants2["fast2"].sent.size();
  CHECK(f1 + f2 + slow >= 2999);
  CHECK(f1 - std::min(f1, f2) + (f2 - std::min(f1, f2)) <= 1);
}

TEST_CASE("429 slows only the tenant that got it", "[scheduler]") {
  FairScheduler scheduler(config());
  scheduler.upsert_tenant("limited", {TenantMode::apply, 1000, 4});
  scheduler.upsert_tenant("other", {TenantMode::apply, 1000, 4});
  scheduler.set_due_rows("limited", 100, std::nullopt);
  scheduler.set_due_rows("other", 100, std::nullopt);
  auto d1 = scheduler.next(kStart);
  auto d2 = scheduler.next(kStart);
  REQUIRE(d1.dispatch);
  REQUIRE(d2.dispatch);
  FinishedAttempt rate_limited = finished(OutcomeKind::rate_limited, kStart);
  rate_limited.retry_after = std::chrono::seconds{20};
  const std::string limited = d1.dispatch->tenant_id;
  const std::string other = d2.dispatch->tenant_id;
  scheduler.on_finished(limited, rate_limited, kStart + 100ms);
  scheduler.on_finished(other, finished(OutcomeKind::applied, kStart), kStart + 100ms);

  const auto snapshot = scheduler.snapshot(kStart + 100ms);
  for (const auto& s : snapshot) {
    INFO(s.tenant_id);
    CHECK(s.throttled == (s.tenant_id == limited));
    CHECK(s.in_flight == 0);
  }
  // Until Retry-After ends only the other tenant is dispatched.
  Instant now = kStart + 100ms;
  std::size_t other_sent = 0;
  while (now < kStart + 20s) {
    auto d = scheduler.next(now);
    if (d.dispatch) {
      CHECK(d.dispatch->tenant_id == other);
      ++other_sent;
      scheduler.on_finished(other, finished(OutcomeKind::applied, now), now);
      scheduler.set_due_rows(other, 100, std::nullopt);
      continue;
    }
    REQUIRE(d.wake_at);
    now = *d.wake_at;
  }
  CHECK(other_sent >= 300);
  CHECK(scheduler.next(kStart + 100ms + 20s).dispatch.has_value());
}

TEST_CASE("wake-up: the earliest pacer slot, due row or probe, nothing when only events help", "[scheduler]") {
  FairScheduler scheduler(config(0, 1, Millis{60'000}));
  scheduler.upsert_tenant("t", {TenantMode::apply, 60, 1});
  // No rows: nothing to wait for.
  auto d = scheduler.next(kStart);
  CHECK_FALSE(d.dispatch);
  CHECK_FALSE(d.wake_at);
  // A row due later: wake then.
  scheduler.set_due_rows("t", 0, kStart + 5s);
  d = scheduler.next(kStart);
  REQUIRE(d.wake_at);
  CHECK(*d.wake_at == kStart + 5s);
  // A due row: dispatch now; then the in-flight limit (1) blocks: no timed wake-up.
  scheduler.set_due_rows("t", 2, std::nullopt);
  d = scheduler.next(kStart);
  REQUIRE(d.dispatch);
  d = scheduler.next(kStart);
  CHECK_FALSE(d.dispatch);
  CHECK_FALSE(d.wake_at);
  // After the completion: the next pacer slot (R = 60: about a second later).
  CHECK(scheduler.on_finished("t", finished(OutcomeKind::tenant_error, kStart), kStart + 100ms) ==
        TenantTransition::paused);
  d = scheduler.next(kStart + 100ms);
  CHECK_FALSE(d.dispatch);
  REQUIRE(d.wake_at);
  const Instant probe_at = kStart + 100ms + 13500ms;  // the first probe: 15 s, jittered (0.5) down
  CHECK(*d.wake_at == probe_at);
  d = scheduler.next(*d.wake_at);
  REQUIRE(d.dispatch);
  CHECK(d.dispatch->probe);
  CHECK(scheduler.on_finished("t", finished(OutcomeKind::applied, probe_at, true), probe_at + 900ms) ==
        TenantTransition::resumed);
  scheduler.set_due_rows("t", 1, std::nullopt);
  d = scheduler.next(probe_at + 900ms);
  REQUIRE_FALSE(d.dispatch);  // its pacer: one request per 1.02 s at R = 60
  REQUIRE(d.wake_at);
  CHECK(*d.wake_at == probe_at + scheduler.pacer("t")->emission_interval(kStart));
  d = scheduler.next(*d.wake_at);
  REQUIRE(d.dispatch);
  CHECK_FALSE(d.dispatch->probe);
}

TEST_CASE("a config reload changes the global cap, in-flight limit and probe interval in place", "[scheduler]") {
  FairScheduler scheduler(config(0, 4, Millis{300'000}));
  scheduler.upsert_tenant("t", {TenantMode::apply, 6000, 8});
  CHECK(scheduler.tenant_state("t")->in_flight_limit() == 4);
  scheduler.set_due_rows("t", 1000, std::nullopt);
  REQUIRE(scheduler.next(kStart).dispatch);

  scheduler.reconfigure(config(1, 2, Millis{10'000}));
  CHECK(scheduler.tenant_state("t")->in_flight_limit() == 2);
  CHECK(scheduler.tenant_state("t")->in_flight() == 1);  // kept
  // Global cap 1/s now.
  const auto d1 = scheduler.next(kStart + 1s);
  REQUIRE(d1.dispatch);
  const auto d2 = scheduler.next(kStart + 1s);
  CHECK_FALSE(d2.dispatch);
  // Both in flight (limit 2): only a completion helps.
  CHECK_FALSE(d2.wake_at);
  CHECK(scheduler.on_finished("t", finished(OutcomeKind::tenant_error, kStart), kStart + 2s) ==
        TenantTransition::paused);
  CHECK(scheduler.tenant_state("t")->pause()->next_probe_at == kStart + 2s + 10s);
}

TEST_CASE("random mix of tenants, outcomes and mode changes keeps every promise", "[scheduler]") {
  // Invariants checked at every step, over half an hour of simulated traffic with random
  // latencies, 429s with and without Retry-After, tenant errors and operator mode changes:
  // pacing windows per tenant, in-flight limits, only probes from error-paused tenants,
  // nothing from tenants not in apply mode, nothing inside a Retry-After, the global cap.
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> coin(0, 1);
    const double global_rate = std::array<double, 3>{0, 20, 80}[seed % 3];
    const Millis probe_interval{20'000};
    FairScheduler scheduler(config(global_rate, 4, probe_interval));

    struct Tenant {
      TenantSettings settings;
      std::vector<Instant> sent;
      std::vector<Instant> probes;
      Instant retry_until{};
    };
    std::map<std::string, Tenant> tenants;
    const int rates[] = {60, 100, 1000, 3000, 6000};
    for (int i = 0; i < 8; ++i) {
      Tenant t;
      t.settings = {TenantMode::apply, rates[rng() % 5], 1 + static_cast<int>(rng() % 6)};
      const std::string id = "tenant-" + std::to_string(i);
      scheduler.upsert_tenant(id, t.settings);
      scheduler.set_due_rows(id, 1'000'000, std::nullopt);
      tenants[id] = t;
    }
    std::priority_queue<Completion, std::vector<Completion>, std::greater<>> in_flight;
    std::vector<Instant> all_sent;
    Instant now = kStart;
    Instant next_mode_change = kStart + 30s;
    const Instant end = kStart + 1800s;
    std::size_t violations = 0;
    while (now < end) {
      if (now >= next_mode_change) {
        auto it = tenants.begin();
        std::advance(it, static_cast<long>(rng() % tenants.size()));
        const double pick = coin(rng);
        it->second.settings.mode = pick < 0.6   ? TenantMode::apply
                                   : pick < 0.8 ? TenantMode::observe
                                                : TenantMode::paused;
        scheduler.upsert_tenant(it->first, it->second.settings);
        next_mode_change = now + 30s;
      }
      while (!in_flight.empty() && in_flight.top().at <= now) {
        const Completion c = in_flight.top();
        in_flight.pop();
        FinishedAttempt attempt = finished(OutcomeKind::applied, c.sent_at, c.probe);
        const double roll = coin(rng);
        // Tenant 0 is broken for the first ten minutes.
        if (c.tenant_id == "tenant-0" && c.at < kStart + 600s)
          attempt.outcome = OutcomeKind::tenant_error;
        else if (roll < 0.04)
          attempt.outcome = OutcomeKind::transient;
        else if (roll < 0.06)
          attempt.outcome = OutcomeKind::rejected;
        else if (roll < 0.08) {
          attempt.outcome = OutcomeKind::rate_limited;
          if (coin(rng) < 0.5) attempt.retry_after = std::chrono::seconds{1 + rng() % 5};
        } else
          attempt.outcome = OutcomeKind::applied;
        if (attempt.retry_after) {
          auto& t = tenants[c.tenant_id];
          t.retry_until = std::max(t.retry_until, c.at + Duration{*attempt.retry_after});
        }
        scheduler.on_finished(c.tenant_id, attempt, c.at);
        scheduler.set_due_rows(c.tenant_id, 1'000'000, std::nullopt);
      }
      const auto d = scheduler.next(now);
      if (d.dispatch) {
        Tenant& t = tenants[d.dispatch->tenant_id];
        const TenantState& state = *scheduler.tenant_state(d.dispatch->tenant_id);
        if (t.settings.mode != TenantMode::apply) ++violations;
        if (state.in_flight() > state.in_flight_limit()) ++violations;
        if (now < t.retry_until) ++violations;
        if (d.dispatch->probe != state.paused_by_error()) ++violations;
        t.sent.push_back(now);
        if (d.dispatch->probe) t.probes.push_back(now);
        all_sent.push_back(now);
        const Duration latency = std::chrono::milliseconds{5 + rng() % 3000};
        in_flight.push({now + latency, d.dispatch->tenant_id, d.dispatch->probe, now});
        scheduler.set_due_rows(d.dispatch->tenant_id, 1'000'000, std::nullopt);
        continue;
      }
      std::optional<Instant> wake = d.wake_at;
      if (!in_flight.empty()) wake = wake ? std::min(*wake, in_flight.top().at) : in_flight.top().at;
      wake = wake ? std::min(*wake, next_mode_change) : next_mode_change;
      REQUIRE(*wake > now);
      now = *wake;
    }
    INFO("seed " << seed << ", global rate " << global_rate);
    CHECK(violations == 0);
    CHECK(all_sent.size() > 1000);
    for (const auto& [id, t] : tenants) {
      INFO(id << " R = " << t.settings.rate_per_minute);
      CHECK(spans_at_least(t.sent, static_cast<std::size_t>(t.settings.rate_per_minute),
                           60s + PacerTuning{}.arrival_jitter));
      CHECK(spans_at_least(t.sent, static_cast<std::size_t>(one_second_limit(t.settings.rate_per_minute)),
                           1s + PacerTuning{}.arrival_jitter));
      // One probe at a time, the first 15 s (jittered down by up to 20 %) after the pause,
      // then waits doubling up to the interval: never two within 12 s.
      for (std::size_t i = 1; i < t.probes.size(); ++i) CHECK(t.probes[i] - t.probes[i - 1] >= 12s);
    }
    CHECK(tenants["tenant-0"].probes.size() >= 1);
    if (global_rate > 0) {
      // GCRA with half an interval of catch-up: at most rate * window + 1 in any window.
      const auto per_10s = static_cast<std::size_t>(global_rate * 10) + 1;
      CHECK(spans_at_least(all_sent, per_10s, 10s));
    }
  }
}

namespace {

// What the run loop told the scheduler about one tenant's rows (set_due_rows), mirrored.
struct DueRows {
  std::size_t due = 0;
  std::optional<Instant> next_due_at;
};

// The decision next() must make, found the slow way: every registered tenant, in id order
// starting after the one served last, each judged from the scheduler's public state and the
// rows the test gave it. The global cap is mirrored (every dispatch takes a slot of it).
struct ReferenceWalk {
  std::map<std::string, DueRows> tenants;  // every registered tenant
  std::string last_served;
  GlobalCap global;

  std::optional<Instant> ready_at(const FairScheduler& scheduler, const std::string& id, Instant now) const {
    const TenantState& state = *scheduler.tenant_state(id);
    if (!state.sends()) return std::nullopt;
    const DueRows& rows = tenants.at(id);
    Instant at = now;
    if (rows.due == 0) {
      if (!rows.next_due_at || *rows.next_due_at <= now) return std::nullopt;
      at = *rows.next_due_at;
    }
    const SendPermission permission = state.permission(at);
    if (!permission.allowed) {
      if (!permission.not_before) return std::nullopt;
      at = std::max(at, *permission.not_before);
    }
    return scheduler.pacer(id)->next_slot(at);
  }

  SchedulerDecision expect(const FairScheduler& scheduler, Instant now) const {
    SchedulerDecision decision;
    const EndpointPermission endpoint = scheduler.endpoint().permission(now);
    const Instant global_slot = global.next_slot(now);
    std::optional<Instant> earliest;
    std::vector<std::string> order;
    for (auto it = tenants.upper_bound(last_served); it != tenants.end(); ++it) order.push_back(it->first);
    for (auto it = tenants.begin(); it != tenants.upper_bound(last_served); ++it) order.push_back(it->first);
    for (const std::string& id : order) {
      std::optional<Instant> ready = ready_at(scheduler, id, now);
      if (!ready) continue;
      if (!endpoint.allowed) {
        if (!endpoint.not_before) continue;
        ready = std::max(*ready, *endpoint.not_before);
      }
      if (*ready > now || global_slot > now) {
        earliest = earliest ? std::min(*earliest, *ready) : *ready;
        continue;
      }
      decision.dispatch = Dispatch{id, scheduler.tenant_state(id)->permission(now).probe, endpoint.probe};
      return decision;
    }
    if (earliest) decision.wake_at = std::max(*earliest, global_slot);
    return decision;
  }
};

std::string describe(const SchedulerDecision& d) {
  std::string s = d.dispatch ? "dispatch " + d.dispatch->tenant_id + (d.dispatch->probe ? " probe" : "") +
                                   (d.dispatch->endpoint_probe ? " endpoint-probe" : "")
                             : "no dispatch";
  if (d.wake_at) s += ", wake at +" + std::to_string((*d.wake_at - kStart).count()) + " ns";
  return s;
}

}  // namespace

TEST_CASE("many idle tenants: next() decides exactly as a walk over every tenant would", "[scheduler]") {
  // 400 registered tenants, a dozen with rows at a time; rows come and go, tenants are added,
  // removed and paused, requests fail (tenant errors, 429, an unreachable endpoint). Before
  // every call the brute-force walk says what next() must answer, to the nanosecond.
  for (std::uint64_t seed : {7u, 8u}) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> coin(0, 1);
    const double global_rate = seed % 2 ? 0 : 40;
    FairScheduler scheduler(config(global_rate, 4, Millis{20'000}));
    ReferenceWalk reference{{}, {}, GlobalCap(global_rate)};
    const int rates[] = {60, 600, 3000, 6000};
    int added = 0;
    const auto add_tenant = [&](std::size_t rows) {
      char id[32];
      std::snprintf(id, sizeof id, "tenant-%04d", added++);
      scheduler.upsert_tenant(id, {TenantMode::apply, rates[rng() % 4], 1 + static_cast<int>(rng() % 4)});
      reference.tenants[id] = DueRows{};
      if (rows > 0) {
        scheduler.set_due_rows(id, rows, std::nullopt);
        reference.tenants[id].due = rows;
      }
    };
    for (int i = 0; i < 400; ++i) add_tenant(coin(rng) < 0.03 ? 200 : 0);
    const auto random_tenant = [&] {
      auto it = reference.tenants.begin();
      std::advance(it, static_cast<long>(rng() % reference.tenants.size()));
      return it->first;
    };
    const auto set_rows = [&](const std::string& id, std::size_t due, std::optional<Instant> next_due_at) {
      scheduler.set_due_rows(id, due, next_due_at);
      reference.tenants.at(id) = DueRows{due, next_due_at};
    };

    std::priority_queue<Completion, std::vector<Completion>, std::greater<>> in_flight;
    Instant now = kStart;
    Instant next_event = kStart + 1s;
    const Instant end = kStart + 300s;
    std::size_t decisions = 0, dispatches = 0, endpoint_probes = 0;
    std::string mismatch;
    while (now < end && mismatch.empty()) {
      // The run loop's refresh: a row due later is due now.
      for (auto& [id, rows] : reference.tenants) {
        if (rows.due == 0 && rows.next_due_at && *rows.next_due_at <= now) set_rows(id, 1 + rng() % 20, std::nullopt);
      }
      if (now >= next_event) {
        const double pick = coin(rng);
        const std::string id = random_tenant();
        if (pick < 0.3)
          set_rows(id, 1 + rng() % 100, std::nullopt);  // an idle tenant gets work
        else if (pick < 0.45)
          set_rows(id, 0, now + std::chrono::milliseconds{1 + rng() % 20'000});  // a row due later
        else if (pick < 0.6)
          set_rows(id, 0, std::nullopt);  // its rows are gone
        else if (pick < 0.7) {
          const TenantMode mode = coin(rng) < 0.5 ? TenantMode::apply : TenantMode::paused;
          scheduler.upsert_tenant(id, {mode, rates[rng() % 4], 1 + static_cast<int>(rng() % 4)});
        } else if (pick < 0.8) {
          scheduler.remove_tenant(id);
          reference.tenants.erase(id);
          add_tenant(coin(rng) < 0.5 ? 50 : 0);
        } else {
          add_tenant(coin(rng) < 0.5 ? 50 : 0);
        }
        next_event = now + std::chrono::milliseconds{1 + rng() % 2000};
      }
      while (!in_flight.empty() && in_flight.top().at <= now) {
        const Completion c = in_flight.top();
        in_flight.pop();
        const double roll = coin(rng);
        FinishedAttempt attempt = finished(OutcomeKind::applied, c.sent_at, c.probe);
        attempt.endpoint_probe = c.endpoint_probe;
        attempt.jitter01 = coin(rng);
        if (roll < 0.03) {
          attempt.outcome = OutcomeKind::transient;
          attempt.reach = EndpointReach::unreachable;
        } else if (roll < 0.06) {
          attempt.outcome = OutcomeKind::tenant_error;
          attempt.error_code = "SIGN_ERROR";
        } else if (roll < 0.09) {
          attempt.outcome = OutcomeKind::rate_limited;
          if (coin(rng) < 0.5) attempt.retry_after = std::chrono::seconds{1 + rng() % 5};
        }
        scheduler.on_finished(c.tenant_id, attempt, c.at);
        auto rows = reference.tenants.find(c.tenant_id);
        if (rows != reference.tenants.end() && attempt.outcome != OutcomeKind::applied)
          set_rows(c.tenant_id, rows->second.due + 1, std::nullopt);  // back in the queue
      }

      const SchedulerDecision expected = reference.expect(scheduler, now);
      const SchedulerDecision d = scheduler.next(now);
      ++decisions;
      if (describe(d) != describe(expected)) {
        mismatch = "at +" + std::to_string((now - kStart).count()) + " ns: next() said " + describe(d) +
                   ", the walk over every tenant " + describe(expected);
        break;
      }
      if (d.dispatch) {
        ++dispatches;
        if (d.dispatch->endpoint_probe) ++endpoint_probes;
        const std::string& id = d.dispatch->tenant_id;
        --reference.tenants.at(id).due;
        reference.last_served = id;
        REQUIRE(reference.global.try_acquire(now));
        const Duration latency = std::chrono::milliseconds{5 + rng() % 1500};
        in_flight.push({now + latency, id, d.dispatch->probe, now, d.dispatch->endpoint_probe});
        continue;
      }
      std::optional<Instant> wake = d.wake_at;
      if (!in_flight.empty()) wake = wake ? std::min(*wake, in_flight.top().at) : in_flight.top().at;
      wake = wake ? std::min(*wake, next_event) : next_event;
      REQUIRE(*wake > now);
      now = *wake;
    }
    INFO("seed " << seed << ", global rate " << global_rate << ", " << decisions << " decisions");
    CHECK(mismatch == "");
    CHECK(dispatches > 2000);
    CHECK(endpoint_probes > 0);  // the walk under a held endpoint was compared too
    CHECK(reference.tenants.size() > 400);
  }
}
