// The egress cap per source address (core/reconcile/egress.h) on its own and inside the fair
// scheduler, in simulated time.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "core/reconcile/egress.h"
#include "core/reconcile/scheduler.h"
#include "reconcile_test_support.h"

using namespace callbackd;
using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;
using wechatpay::OutcomeKind;

namespace {

// Busy tenants (rows always due, answers instant) behind `lanes` for `span`: the send times
// per lane and per tenant.
struct BusyRun {
  std::map<std::size_t, std::vector<Instant>> by_lane;
  std::map<std::string, std::vector<Instant>> by_tenant;
};

BusyRun run_busy(FairScheduler& scheduler, const std::vector<std::string>& tenants, Duration span) {
  BusyRun run;
  for (const auto& id : tenants) scheduler.set_due_rows(id, 1'000'000, std::nullopt);
  Instant now = kStart;
  while (now < kStart + span) {
    const auto d = scheduler.next(now);
    if (d.dispatch) {
      run.by_lane[d.dispatch->source].push_back(now);
      run.by_tenant[d.dispatch->tenant_id].push_back(now);
      scheduler.on_finished(d.dispatch->tenant_id, finished(OutcomeKind::applied, now), now);
      continue;
    }
    REQUIRE(d.wake_at);
    now = *d.wake_at;
  }
  return run;
}

FairScheduler scheduler_for(const std::vector<std::string>& tenants, int tenant_rate) {
  FairScheduler scheduler(ReconcilerConfig{});
  for (const auto& id : tenants) scheduler.upsert_tenant(id, TenantSettings{TenantMode::apply, tenant_rate, 4});
  return scheduler;
}

}  // namespace

TEST_CASE("one capped lane holds the server's per-address windows, shared fairly by the tenants", "[egress]") {
  const std::vector<std::string> tenants{"a", "b", "c"};
  FairScheduler scheduler = scheduler_for(tenants, 1000);
  scheduler.set_egress(EgressLanes(1, 60));
  const auto run = run_busy(scheduler, tenants, 10min);
  const auto& sent = run.by_lane.at(0);
  // At most 60 in any 60 s and 1 in any 1 s (arrival jitter included), and close to 60 a minute.
  CHECK(spans_at_least(sent, 60, 60s + PacerTuning{}.arrival_jitter));
  CHECK(spans_at_least(sent, 1, 1s + PacerTuning{}.arrival_jitter));
  CHECK(sent.size() >= 9 * 60);
  // Round robin: each tenant a third, give or take one.
  for (const auto& id : tenants) {
    CHECK(run.by_tenant.at(id).size() + 1 >= sent.size() / 3);
    CHECK(run.by_tenant.at(id).size() <= sent.size() / 3 + 1);
  }
}

TEST_CASE("two source addresses carry twice one address's cap, each within its own windows", "[egress]") {
  const std::vector<std::string> tenants{"a", "b", "c"};
  FairScheduler one = scheduler_for(tenants, 1000);
  one.set_egress(EgressLanes(1, 60));
  FairScheduler two = scheduler_for(tenants, 1000);
  two.set_egress(EgressLanes(2, 60));
  const auto single = run_busy(one, tenants, 5min);
  const auto both = run_busy(two, tenants, 5min);
  REQUIRE(both.by_lane.size() == 2);
  for (const auto& [lane, sent] : both.by_lane) {
    INFO("lane " << lane);
    CHECK(spans_at_least(sent, 60, 60s));
    CHECK(spans_at_least(sent, 1, 1s));
  }
  const std::size_t total = both.by_lane.at(0).size() + both.by_lane.at(1).size();
  CHECK(total >= 2 * single.by_lane.at(0).size() - 2);
}

TEST_CASE("without a cap the lanes take turns and nothing is held back", "[egress]") {
  EgressLanes lanes(3);
  CHECK_FALSE(lanes.capped());
  CHECK(lanes.next_slot(kStart) == kStart);
  std::vector<std::size_t> order;
  for (int i = 0; i < 6; ++i) order.push_back(*lanes.try_acquire(kStart));
  CHECK(order == std::vector<std::size_t>{0, 1, 2, 0, 1, 2});
  CHECK_FALSE(lanes.effective_rate_per_minute(kStart).has_value());
  // One tenant refused: the tenant's pacer slows down, the lane stays uncapped.
  CHECK_FALSE(lanes.on_rate_limited(0, "a", kStart, kStart, std::nullopt));
  CHECK(lanes.next_slot(kStart + 1s) == kStart + 1s);
}

TEST_CASE("an uncapped address learns its cap from what it let through when several tenants are refused", "[egress]") {
  const auto learn = EgressLanes::Learn::yes;
  SECTION("over a full minute: what the server let through in it") {
    EgressLanes one(1, std::nullopt, learn);
    Instant now = kStart;
    for (int i = 0; i < 300; ++i, now += 1s) REQUIRE(one.try_acquire(now) == 0u);  // 5 minutes at 60/min
    CHECK_FALSE(one.on_rate_limited(0, "a", now, now, std::nullopt));              // one tenant: its own limit
    CHECK(one.on_rate_limited(0, "b", now + 100ms, now, std::nullopt));
    // 59 sent in the last minute (the one at exactly now - 60 s is out), 2 of them refused.
    CHECK(*one.effective_rate_per_minute(now + 100ms) == Approx(57));
    // From then on every 429 through it is the address's, and learns again, never higher.
    CHECK(one.on_rate_limited(0, "a", now + 200ms, now, std::nullopt));
    CHECK(*one.effective_rate_per_minute(now + 200ms) == Approx(56));
  }
  SECTION("right at the start: scaled up to a minute, the history counted as at least 1 s") {
    EgressLanes one(1, std::nullopt, learn);
    for (int i = 0; i < 3; ++i) REQUIRE(one.try_acquire(kStart));  // three tenants at once
    CHECK_FALSE(one.on_rate_limited(0, "b", kStart + 5ms, kStart, std::nullopt));
    REQUIRE(one.on_rate_limited(0, "c", kStart + 6ms, kStart, std::nullopt));
    CHECK(*one.effective_rate_per_minute(kStart + 6ms) == Approx(60));  // 1 let through in "1 s"
    // A capped lane from then on: one a second at 60 a minute.
    const Instant first = one.next_slot(kStart + 6ms);
    REQUIRE(one.try_acquire(first));
    CHECK(one.next_slot(first) >= first + 1s);
  }
  SECTION("nothing let through: one a minute, raised by 10% after 5 quiet minutes") {
    EgressLanes one(1, std::nullopt, learn);
    REQUIRE(one.try_acquire(kStart));
    REQUIRE(one.try_acquire(kStart));
    one.on_rate_limited(0, "a", kStart, kStart, std::nullopt);
    REQUIRE(one.on_rate_limited(0, "b", kStart, kStart, std::nullopt));
    CHECK(*one.effective_rate_per_minute(kStart) == Approx(1));
    one.next_slot(kStart + 5min);
    CHECK(*one.effective_rate_per_minute(kStart + 5min) == Approx(2));  // at least +1
    one.next_slot(kStart + 60min);
    CHECK(*one.effective_rate_per_minute(kStart + 60min) > 10);
  }
  SECTION("without learning (a bare FairScheduler) nothing is learned") {
    EgressLanes one(1);
    REQUIRE(one.try_acquire(kStart));
    CHECK_FALSE(one.on_rate_limited(0, "a", kStart, kStart, std::nullopt));
    CHECK_FALSE(one.on_rate_limited(0, "b", kStart, kStart, std::nullopt));
    CHECK_FALSE(one.effective_rate_per_minute(kStart).has_value());
  }
}

TEST_CASE("learned rates resume after a restart, moved back towards the configured rate by their age", "[egress]") {
  CHECK(*restored_rate(100, 1000.0, 0s) == Approx(100));
  CHECK(*restored_rate(100, 1000.0, 30min) == Approx(550));
  CHECK(*restored_rate(100, 1000.0, 2h) == Approx(1000));
  CHECK(*restored_rate(5000, 1000.0, 0s) == Approx(1000));  // never above what is configured
  // An address that learned its cap without one configured: rising, then forgotten.
  CHECK(*restored_rate(60, std::nullopt, 0s) == Approx(60));
  CHECK(*restored_rate(60, std::nullopt, 30min) == Approx(90));
  CHECK_FALSE(restored_rate(60, std::nullopt, 1h).has_value());

  EgressLanes lanes(2, std::nullopt, EgressLanes::Learn::yes);
  lanes.restore(1, 60, 0s, kStart);
  CHECK(lanes.learned(kStart) == std::map<std::size_t, double>{{1, 60.0}});
  EgressLanes capped(1, 100, EgressLanes::Learn::yes);
  capped.restore(0, 40, 0s, kStart);
  CHECK(capped.learned(kStart).at(0) == Approx(40));

  FairScheduler scheduler = scheduler_for({"a"}, 1000);
  LearnedRate a{LearnedScope::tenant, "a", 100.0, 0s};
  LearnedRate later{LearnedScope::tenant, "later", 10.0, 0s};
  scheduler.restore_learned({{"a", a}, {"later", later}}, {}, kStart);
  CHECK(scheduler.pacer("a")->effective_rate_per_minute(kStart) == Approx(100));
  scheduler.upsert_tenant("later", TenantSettings{TenantMode::apply, 600, 4});
  CHECK(scheduler.pacer("later")->effective_rate_per_minute(kStart) == Approx(10));
  CHECK(scheduler.learned_tenant_rates(kStart) == std::map<std::string, double>{{"a", 100.0}, {"later", 10.0}});
}

TEST_CASE("what is written of the learned rates: moves of 1% or more, and forgetting", "[egress]") {
  const LearnedKey a{LearnedScope::tenant, "a"};
  const LearnedKey addr{LearnedScope::source_address, ""};
  CHECK(learned_rate_changes({}, {}).empty());
  CHECK(learned_rate_changes({{a, 100}}, {{a, 100.5}}).empty());
  const auto changes = learned_rate_changes({{a, 100}, {addr, 60}}, {{a, 102}});
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].key == "a");
  CHECK(changes[0].rate_per_minute == std::optional<double>(102));
  CHECK(changes[1].scope == LearnedScope::source_address);
  CHECK_FALSE(changes[1].rate_per_minute.has_value());
}

TEST_CASE("429s of several tenants through one address lower that address's cap, not the tenants' rates", "[egress]") {
  const std::vector<std::string> tenants{"a", "b"};
  FairScheduler scheduler = scheduler_for(tenants, 1000);
  scheduler.set_egress(EgressLanes(1, 100));
  for (const auto& id : tenants) scheduler.set_due_rows(id, 100, std::nullopt);
  // One request of each, through the one address.
  auto send = [&](Instant now) {
    const auto d = scheduler.next(now);
    REQUIRE(d.dispatch);
    CHECK(d.dispatch->source == 0);
    return *d.dispatch;
  };
  auto refused = [&](const Dispatch& d, Instant sent_at, Instant now) {
    auto attempt = finished(OutcomeKind::rate_limited, sent_at);
    attempt.source = d.source;
    scheduler.on_finished(d.tenant_id, attempt, now);
  };
  Instant now = kStart;
  const Dispatch first = send(now);
  const Instant first_at = now;
  now = scheduler.next(now).wake_at.value();
  const Dispatch second = send(now);
  REQUIRE(first.tenant_id != second.tenant_id);

  // One tenant refused: its own limit, as far as anyone can tell.
  refused(first, first_at, now + 10ms);
  CHECK(scheduler.pacer(first.tenant_id)->effective_rate_per_minute(now + 10ms) == Approx(500));
  CHECK(*scheduler.egress().effective_rate_per_minute(now + 10ms) == Approx(100));

  // The other tenant refused through the same address within 60 s: the address's limit.
  refused(second, now, now + 20ms);
  CHECK(scheduler.pacer(second.tenant_id)->effective_rate_per_minute(now + 20ms) == Approx(1000));
  CHECK(*scheduler.egress().effective_rate_per_minute(now + 20ms) == Approx(50));

  // Through another address, or more than 60 s later, a refusal is one tenant's again.
  EgressLanes lanes(2, 100);
  CHECK_FALSE(lanes.on_rate_limited(1, "a", kStart, kStart, std::nullopt));
  CHECK_FALSE(lanes.on_rate_limited(1, "b", kStart + 61s, kStart + 61s, std::nullopt));
  CHECK(lanes.on_rate_limited(1, "a", kStart + 62s, kStart + 62s, std::nullopt));
  CHECK_FALSE(lanes.on_rate_limited(0, "b", kStart + 62s, kStart + 62s, std::nullopt));
  CHECK(*lanes.effective_rate_per_minute(kStart + 62s) == Approx(150));
}

TEST_CASE("a tenant's sending rate is its fair share of the egress caps when that is lower", "[egress]") {
  CHECK(sending_rate_per_minute(1000, std::nullopt, 3) == 1000);
  CHECK(sending_rate_per_minute(1000, 60.0, 3) == Approx(20));
  CHECK(sending_rate_per_minute(10, 60.0, 3) == Approx(10));
  CHECK(sending_rate_per_minute(1000, 60.0, 0) == Approx(60));
}
