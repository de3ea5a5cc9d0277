// The endpoint hold: while WeChat Pay cannot be reached, one probe per backoff step, in
// simulated time; and the scheduler honouring it across tenants.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "core/reconcile/endpoint_hold.h"
#include "core/reconcile/scheduler.h"
#include "reconcile_test_support.h"

using namespace callbackd;
using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;
using wechatpay::OutcomeKind;
using namespace std::chrono_literals;

TEST_CASE("endpoint hold: the first unreachable result holds, one probe per step, a reached probe releases",
          "[endpoint_hold]") {
  EndpointHold hold;  // 1 s doubling to 30 s, jitter 0.2
  CHECK(hold.permission(kStart).allowed);
  CHECK_FALSE(hold.permission(kStart).probe);
  // Three requests in flight when the outage starts: the first failure holds, the others
  // (sent before the hold) change nothing.
  for (int i = 0; i < 3; ++i) hold.on_sent(kStart, false);
  CHECK(hold.on_finished(EndpointReach::unreachable, false, kStart + 10ms, 0.0) == EndpointTransition::held);
  CHECK(hold.held());
  CHECK(hold.next_probe_at() == kStart + 10ms + 1s);  // uniform 0: the whole step
  CHECK(hold.on_finished(EndpointReach::unreachable, false, kStart + 20ms, 1.0) == EndpointTransition::none);
  CHECK(hold.next_probe_at() == kStart + 10ms + 1s);
  // A non-probe answer from before the hold does not release it either.
  CHECK(hold.on_finished(EndpointReach::reached, false, kStart + 30ms, 0.0) == EndpointTransition::none);
  CHECK(hold.held());

  // Nothing may go before the probe time; then exactly one probe.
  const auto before = hold.permission(kStart + 500ms);
  CHECK_FALSE(before.allowed);
  REQUIRE(before.not_before);
  CHECK(*before.not_before == kStart + 10ms + 1s);
  const Instant probe_at = kStart + 10ms + 1s;
  const auto p = hold.permission(probe_at);
  CHECK(p.allowed);
  CHECK(p.probe);
  hold.on_sent(probe_at, true);
  const auto during = hold.permission(probe_at + 1ms);
  CHECK_FALSE(during.allowed);
  CHECK_FALSE(during.not_before);  // only the probe's completion can change it

  // A failed probe: the step doubles (jitter 1.0 takes 20 % off).
  CHECK(hold.on_finished(EndpointReach::unreachable, true, probe_at + 5ms, 1.0) == EndpointTransition::none);
  CHECK(hold.failed_probes() == 1);
  CHECK(hold.step() == 2s);
  CHECK(hold.next_probe_at() == probe_at + 5ms + 1600ms);

  // A probe that was never sent (the tenant's keys failed to load) says nothing: another may go at once.
  const Instant second = hold.next_probe_at();
  hold.on_sent(second, true);
  CHECK(hold.on_finished(EndpointReach::not_sent, true, second, 0.0) == EndpointTransition::none);
  CHECK(hold.permission(second).allowed);
  CHECK(hold.step() == 2s);

  // Any HTTP answer to the probe (a 503 too) releases the hold.
  hold.on_sent(second, true);
  CHECK(hold.on_finished(EndpointReach::reached, true, second + 50ms, 0.0) == EndpointTransition::released);
  CHECK_FALSE(hold.held());
  CHECK(hold.permission(second + 50ms).allowed);
  CHECK_FALSE(hold.permission(second + 50ms).probe);

  // The next outage starts again from the initial step.
  hold.on_sent(second + 1s, false);
  CHECK(hold.on_finished(EndpointReach::unreachable, false, second + 2s, 0.0) == EndpointTransition::held);
  CHECK(hold.step() == 1s);
  CHECK(hold.failed_probes() == 0);
}

TEST_CASE("endpoint hold: answers that are not WeChat Pay's, from three different rows in a row, hold the path",
          "[endpoint_hold]") {
  EndpointHold hold;  // not_wechatpay_rows = 3
  // One row answered by a proxy again and again (a WAF refusing its content) never holds the
  // path: it is that row's problem, retried with its own backoff.
  for (int i = 0; i < 5; ++i)
    CHECK(hold.on_finished(EndpointReach::not_wechatpay, false, kStart, 0.0, "1900000101") == EndpointTransition::none);
  CHECK_FALSE(hold.held());
  CHECK(hold.on_finished(EndpointReach::not_wechatpay, false, kStart, 0.0, "1900000102") == EndpointTransition::none);
  // An answer of WeChat Pay's in between: the streak starts over.
  CHECK(hold.on_finished(EndpointReach::reached, false, kStart, 0.0, "1900000103") == EndpointTransition::none);
  CHECK(hold.on_finished(EndpointReach::not_wechatpay, false, kStart, 0.0, "1900000104") == EndpointTransition::none);
  CHECK(hold.on_finished(EndpointReach::not_wechatpay, false, kStart, 0.0, "1900000105") == EndpointTransition::none);
  // Results that say nothing (not sent) do not break it either.
  CHECK(hold.on_finished(EndpointReach::not_sent, false, kStart, 0.0, "1900000106") == EndpointTransition::none);
  CHECK_FALSE(hold.held());
  CHECK(hold.on_finished(EndpointReach::not_wechatpay, false, kStart + 10ms, 0.0, "1900000107") ==
        EndpointTransition::held);
  CHECK(hold.held());
  CHECK(hold.reason() == EndpointHoldReason::not_wechatpay);
  CHECK(endpoint_hold_reason_name(hold.reason()) == "not_wechatpay");
  CHECK(hold.next_probe_at() == kStart + 10ms + 1s);

  // Probed like an outage: a probe answered by the proxy again is a failed probe.
  const Instant probe_at = hold.next_probe_at();
  hold.on_sent(probe_at, true);
  CHECK(hold.on_finished(EndpointReach::not_wechatpay, true, probe_at + 5ms, 0.0, "1900000101") ==
        EndpointTransition::none);
  CHECK(hold.failed_probes() == 1);
  CHECK(hold.step() == 2s);
  // The path is now cut entirely: still held, now for that reason.
  const Instant second = hold.next_probe_at();
  hold.on_sent(second, true);
  CHECK(hold.on_finished(EndpointReach::unreachable, true, second, 0.0, "1900000102") == EndpointTransition::none);
  CHECK(hold.reason() == EndpointHoldReason::unreachable);
  CHECK(hold.failed_probes() == 2);
  // And then answered by the proxy again.
  const Instant third = hold.next_probe_at();
  hold.on_sent(third, true);
  CHECK(hold.on_finished(EndpointReach::not_wechatpay, true, third, 0.0, "1900000103") == EndpointTransition::none);
  CHECK(hold.reason() == EndpointHoldReason::not_wechatpay);
  // WeChat Pay's own answer (its error body or a signed 2xx) releases.
  const Instant fourth = hold.next_probe_at();
  hold.on_sent(fourth, true);
  CHECK(hold.on_finished(EndpointReach::reached, true, fourth, 0.0, "1900000104") == EndpointTransition::released);
  CHECK_FALSE(hold.held());
  CHECK(hold.failed_probes() == 3);

  // After the release the streak starts from nothing: two more rows do not hold.
  CHECK(hold.on_finished(EndpointReach::not_wechatpay, false, fourth, 0.0, "1900000105") == EndpointTransition::none);
  CHECK(hold.on_finished(EndpointReach::not_wechatpay, false, fourth, 0.0, "1900000106") == EndpointTransition::none);
  CHECK_FALSE(hold.held());

  // An unreachable hold is not released by a proxy's answer to its probe either.
  EndpointHold outage;
  CHECK(outage.on_finished(EndpointReach::unreachable, false, kStart, 0.0, "1900000101") == EndpointTransition::held);
  CHECK(outage.reason() == EndpointHoldReason::unreachable);
  outage.on_sent(outage.next_probe_at(), true);
  CHECK(outage.on_finished(EndpointReach::not_wechatpay, true, outage.next_probe_at(), 0.0, "1900000102") ==
        EndpointTransition::none);
  CHECK(outage.held());
  CHECK(outage.reason() == EndpointHoldReason::not_wechatpay);
}

TEST_CASE("endpoint hold: the step is capped and jitter never exceeds it", "[endpoint_hold]") {
  EndpointHold hold;
  hold.on_sent(kStart, false);
  hold.on_finished(EndpointReach::unreachable, false, kStart, 0.5);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Instant now = kStart;
  for (int i = 0; i < 40; ++i) {
    now = hold.next_probe_at();
    hold.on_sent(now, true);
    const double sample = u(rng);
    hold.on_finished(EndpointReach::unreachable, true, now, sample);
    CHECK(hold.step() <= 30s);
    CHECK(hold.next_probe_at() - now <= hold.step());
    CHECK(hold.next_probe_at() - now >= std::chrono::duration_cast<Duration>(hold.step() * 0.8));
  }
  CHECK(hold.step() == 30s);
}

namespace {

// The daemon's loop against an endpoint that is down from `down_from` to `down_until`:
// every request of every tenant is dispatched by the scheduler and comes back after
// `latency`, unreachable while down. Returns the send instants.
struct OutageRun {
  std::vector<Instant> sends_during_outage;
  std::size_t before_hold = 0;  // sent during the outage before the first failure came back
  Instant held_at{};
  Instant released_at{};
};

OutageRun simulate_outage(Duration down_for, int tenants, std::size_t rows_per_tenant) {
  ReconcilerConfig c;
  c.max_in_flight_per_tenant = 8;
  FairScheduler scheduler(c);
  std::vector<std::string> ids;
  for (int i = 0; i < tenants; ++i) {
    ids.push_back("t" + std::to_string(i));
    scheduler.upsert_tenant(ids.back(), TenantSettings{TenantMode::apply, 60'000, 8});
    scheduler.set_due_rows(ids.back(), rows_per_tenant, std::nullopt);
  }
  const Instant down_from = kStart + 1s;
  const Instant down_until = down_from + down_for;
  const Duration latency = 20ms;
  struct InFlight {
    Instant done;
    std::string tenant;
    Dispatch dispatch;
    Instant sent;
  };
  std::vector<InFlight> in_flight;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  OutageRun run;
  Instant now = kStart;
  // Bounded: every iteration advances time or dispatches.
  for (int step = 0; step < 5'000'000; ++step) {
    auto d = scheduler.next(now);
    if (d.dispatch) {
      if (now >= down_from && now < down_until) {
        run.sends_during_outage.push_back(now);
        if (!scheduler.endpoint().held() && run.released_at == Instant{}) ++run.before_hold;
      }
      in_flight.push_back({now + latency, d.dispatch->tenant_id, *d.dispatch, now});
      continue;
    }
    // Advance to the next completion or wake-up.
    std::optional<Instant> next = d.wake_at;
    for (const auto& f : in_flight)
      if (!next || f.done < *next) next = f.done;
    if (!next) break;  // all rows sent
    now = std::max(now, *next);
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (it->done > now) {
        ++it;
        continue;
      }
      const bool down = it->sent >= down_from && it->sent < down_until;
      FinishedAttempt f = finished(down ? OutcomeKind::transient : OutcomeKind::applied, it->sent, it->dispatch.probe);
      f.endpoint_probe = it->dispatch.endpoint_probe;
      f.reach = down ? EndpointReach::unreachable : EndpointReach::reached;
      f.jitter01 = u(rng);
      const bool was_held = scheduler.endpoint().held();
      scheduler.on_finished(it->tenant, f, now);
      if (!was_held && scheduler.endpoint().held()) run.held_at = now;
      if (was_held && !scheduler.endpoint().held()) run.released_at = now;
      it = in_flight.erase(it);
    }
  }
  return run;
}

}  // namespace

TEST_CASE("a long outage costs a logarithmic-then-linear handful of probes, not a request per row",
          "[endpoint_hold][scheduler]") {
  // 3 tenants x 8 in flight at 1,000/s each: without the hold, ~3,000 failing requests a second.
  for (const Duration outage : {Duration{30s}, Duration{10min}, Duration{2h}}) {
    const OutageRun run = simulate_outage(outage, 3, 100'000);
    const double seconds = std::chrono::duration<double>(outage).count();
    // Before the first failure came back (one latency): what the in-flight limits allow.
    CHECK(run.before_hold <= 2 * 3 * 8);
    CHECK(run.held_at <= kStart + 1s + 21ms);
    // Then about log2(30) + T / (30 s * 0.8) probes, one at a time.
    const std::size_t probes = run.sends_during_outage.size() - run.before_hold;
    const double bound = std::ceil(std::log2(30.0)) + 1 + seconds / 24.0;
    INFO("outage " << seconds << " s: " << run.before_hold << " + " << probes << " requests, probe bound " << bound);
    CHECK(static_cast<double>(probes) <= bound);
    for (std::size_t i = run.before_hold; i + 1 < run.sends_during_outage.size(); ++i)
      CHECK(run.sends_during_outage[i + 1] - run.sends_during_outage[i] >= 800ms);
    // Released within one max step after the endpoint came back; then full speed again.
    CHECK(run.released_at > kStart + 1s + outage);
    CHECK(run.released_at <= kStart + 1s + outage + 31s);
  }
  // 30 s, as the e2e test does it: 1+2+4+8+16 s of steps, at most 6 probes.
  const OutageRun short_run = simulate_outage(30s, 1, 10'000);
  CHECK(short_run.sends_during_outage.size() - short_run.before_hold <= 6);
}

namespace {

// Tenants "a" and "b", 100 due rows each, up to 60,000 requests a minute and 4 in flight.
FairScheduler two_busy_tenants() {
  FairScheduler scheduler{ReconcilerConfig{}};
  for (const char* tenant : {"a", "b"}) {
    scheduler.upsert_tenant(tenant, TenantSettings{TenantMode::apply, 60'000, 4});
    scheduler.set_due_rows(tenant, 100, std::nullopt);
  }
  return scheduler;
}

}  // namespace

TEST_CASE("while the endpoint is held no tenant sends, and the probe goes to the next ready tenant",
          "[endpoint_hold][scheduler]") {
  FairScheduler scheduler = two_busy_tenants();
  auto d = scheduler.next(kStart);
  REQUIRE(d.dispatch);
  CHECK_FALSE(d.dispatch->endpoint_probe);
  FinishedAttempt f = finished(OutcomeKind::transient, kStart);
  f.reach = EndpointReach::unreachable;
  f.jitter01 = 0.0;
  CHECK(scheduler.on_finished(d.dispatch->tenant_id, f, kStart + 5ms) == TenantTransition::none);
  REQUIRE(scheduler.endpoint().held());
  // Nobody sends until the probe time, which is the wake-up.
  auto held = scheduler.next(kStart + 10ms);
  CHECK_FALSE(held.dispatch);
  REQUIRE(held.wake_at);
  CHECK(*held.wake_at == kStart + 5ms + 1s);
  auto probe = scheduler.next(*held.wake_at);
  REQUIRE(probe.dispatch);
  CHECK(probe.dispatch->endpoint_probe);
  CHECK_FALSE(probe.dispatch->probe);  // not a tenant probe: the tenant is fine
  // The probe is out: nothing else goes, not even later, until it comes back.
  auto waiting = scheduler.next(*held.wake_at + 10s);
  CHECK_FALSE(waiting.dispatch);
  CHECK_FALSE(waiting.wake_at);
  FinishedAttempt ok = finished(OutcomeKind::applied, *held.wake_at, false);
  ok.endpoint_probe = true;
  ok.reach = EndpointReach::reached;
  scheduler.on_finished(probe.dispatch->tenant_id, ok, *held.wake_at + 10s);
  CHECK_FALSE(scheduler.endpoint().held());
  // Both tenants send again at once.
  auto a = scheduler.next(*held.wake_at + 10s);
  auto b = scheduler.next(*held.wake_at + 10s);
  REQUIRE(a.dispatch);
  REQUIRE(b.dispatch);
  CHECK(a.dispatch->tenant_id != b.dispatch->tenant_id);
}

TEST_CASE("the scheduler holds every tenant when a proxy answers for three different rows",
          "[endpoint_hold][scheduler]") {
  FairScheduler scheduler = two_busy_tenants();
  Instant now = kStart;
  for (const char* row : {"1900000101", "1900000102", "1900000103"}) {
    auto d = scheduler.next(now);
    REQUIRE(d.dispatch);
    FinishedAttempt f = finished(OutcomeKind::transient, now);
    f.reach = EndpointReach::not_wechatpay;
    f.row = row;
    f.jitter01 = 0.0;
    // Not the tenant's fault either: it keeps its state, the path is held.
    CHECK(scheduler.on_finished(d.dispatch->tenant_id, f, now + 5ms) == TenantTransition::none);
    now += 100ms;
  }
  REQUIRE(scheduler.endpoint().held());
  CHECK(scheduler.endpoint().reason() == EndpointHoldReason::not_wechatpay);
  CHECK_FALSE(scheduler.tenant_state("a")->paused_by_error());
  CHECK_FALSE(scheduler.tenant_state("b")->paused_by_error());
  auto held = scheduler.next(now);
  CHECK_FALSE(held.dispatch);
  REQUIRE(held.wake_at);
  CHECK(*held.wake_at == now - 100ms + 5ms + 1s);
  auto probe = scheduler.next(*held.wake_at);
  REQUIRE(probe.dispatch);
  CHECK(probe.dispatch->endpoint_probe);
}
