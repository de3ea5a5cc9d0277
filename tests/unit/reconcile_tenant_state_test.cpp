// The tenant state machine: modes, the error pause with one probe per interval, in-flight.
#include <catch2/catch.hpp>

#include "core/reconcile/tenant_state.h"
#include "reconcile_test_support.h"

using namespace callbackd;
using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;
using wechatpay::OutcomeKind;
using namespace std::chrono_literals;

TEST_CASE("in-flight limit is the smaller of the tenant's and the config's, at least one", "[tenant_state]") {
  CHECK(TenantState(TenantMode::apply, 8, 4, 300s).in_flight_limit() == 4);
  CHECK(TenantState(TenantMode::apply, 2, 4, 300s).in_flight_limit() == 2);
  CHECK(TenantState(TenantMode::apply, 0, 4, 300s).in_flight_limit() == 1);

  TenantState t(TenantMode::apply, 2, 4, 300s);
  CHECK(t.permission(kStart).allowed);
  t.on_sent(kStart, false);
  t.on_sent(kStart, false);
  CHECK_FALSE(t.permission(kStart).allowed);
  CHECK_FALSE(t.permission(kStart).not_before.has_value());  // a completion frees it, not time
  t.on_finished(OutcomeKind::transient, false, kStart + 1s, "SYSTEM_ERROR", "");
  CHECK(t.permission(kStart + 1s).allowed);
  t.set_max_in_flight(1, 4);
  CHECK_FALSE(t.permission(kStart + 1s).allowed);
}

TEST_CASE("modes: apply sends, observe plans only, paused does nothing", "[tenant_state]") {
  TenantState t(TenantMode::apply, 4, 4, 300s);
  CHECK(t.plans());
  CHECK(t.sends());
  CHECK(t.permission(kStart).allowed);
  t.set_mode(TenantMode::observe);
  CHECK(t.plans());
  CHECK_FALSE(t.sends());
  CHECK_FALSE(t.permission(kStart).allowed);
  CHECK_FALSE(t.permission(kStart).not_before.has_value());
  t.set_mode(TenantMode::paused);
  CHECK_FALSE(t.plans());
  CHECK_FALSE(t.sends());
  CHECK_FALSE(t.permission(kStart + 24h).allowed);
}

TEST_CASE("tenant_error pauses; probes back off from 15 s to the interval; an applied probe resumes",
          "[tenant_state]") {
  TenantState t(TenantMode::apply, 4, 4, 300s);
  t.on_sent(kStart, false);
  t.on_sent(kStart, false);
  const Instant failed_at = kStart + 200ms;
  CHECK(t.on_finished(OutcomeKind::tenant_error, false, failed_at, "SIGN_ERROR", "wrong serial") ==
        TenantTransition::paused);
  REQUIRE(t.paused_by_error());
  CHECK(t.pause()->error_code == "SIGN_ERROR");
  CHECK(t.pause()->reason == "wrong serial");
  CHECK(t.pause()->paused_at == failed_at);
  // Issue 13 item 9: the first probe after 15 s, not after the whole interval (5 min of quota
  // lost to one response whose signature did not verify).
  CHECK(t.pause()->next_probe_at == failed_at + 15s);

  // The other request in flight fails the same way: still paused, schedule unchanged.
  CHECK(t.on_finished(OutcomeKind::tenant_error, false, failed_at + 10ms, "SIGN_ERROR", "again") ==
        TenantTransition::none);
  CHECK(t.pause()->next_probe_at == failed_at + 15s);
  CHECK(t.pause()->reason == "again");

  // Nothing before the probe time, and the permission says when.
  auto p = t.permission(failed_at + 14s);
  CHECK_FALSE(p.allowed);
  REQUIRE(p.not_before.has_value());
  CHECK(*p.not_before == failed_at + 15s);

  // A key that stays wrong: one probe at a time, each wait twice the last, then the interval.
  struct Step {
    Duration wait_after;  // from the probe's completion to the next probe
    OutcomeKind outcome;  // what the probe came back with
  };
  const std::vector<Step> steps{{30s, OutcomeKind::tenant_error},  {60s, OutcomeKind::tenant_error},
                                {120s, OutcomeKind::transient},    {240s, OutcomeKind::tenant_error},
                                {300s, OutcomeKind::rate_limited}, {300s, OutcomeKind::tenant_error}};
  Instant probe_at = failed_at + 15s;
  for (const auto& step : steps) {
    INFO("probe at +" << std::chrono::duration_cast<std::chrono::seconds>(probe_at - failed_at).count() << " s");
    p = t.permission(probe_at);
    REQUIRE(p.allowed);
    CHECK(p.probe);
    t.on_sent(probe_at, true);
    CHECK_FALSE(t.permission(probe_at).allowed);  // one probe at a time
    CHECK_FALSE(t.permission(probe_at + 1h).allowed);
    const Instant back = probe_at + 1s;
    CHECK(t.on_finished(step.outcome, true, back, "SIGN_ERROR", "still") == TenantTransition::none);
    CHECK(t.paused_by_error());
    CHECK(t.pause()->next_probe_at == back + step.wait_after);
    CHECK_FALSE(t.permission(back + step.wait_after - 1ms).allowed);
    probe_at = back + step.wait_after;
  }

  // An applied probe resumes the tenant; its full in-flight limit is back.
  REQUIRE(t.permission(probe_at).probe);
  t.on_sent(probe_at, true);
  CHECK(t.on_finished(OutcomeKind::applied, true, probe_at + 1s, "", "") == TenantTransition::resumed);
  CHECK_FALSE(t.paused_by_error());
  for (int i = 0; i < 4; ++i) {
    const auto q = t.permission(probe_at + 1s);
    REQUIRE(q.allowed);
    CHECK_FALSE(q.probe);
    t.on_sent(probe_at + 1s, false);
  }
  CHECK_FALSE(t.permission(probe_at + 1s).allowed);

  // Paused again later: the backoff starts over at 15 s.
  CHECK(t.on_finished(OutcomeKind::tenant_error, false, probe_at + 2s, "SIGN_ERROR", "") == TenantTransition::paused);
  CHECK(t.pause()->next_probe_at == probe_at + 2s + 15s);
}

TEST_CASE("probe waits: jittered down below the interval, exact at it; the first never beyond the interval",
          "[tenant_state]") {
  struct Row {
    Duration step, interval;
    double jitter01;
    Duration wait;
  };
  const std::vector<Row> rows{
      {15s, 300s, 0.0, 15s},   {15s, 300s, 1.0, 12s},   {15s, 300s, 0.5, 13500ms}, {240s, 300s, 1.0, 192s},
      {300s, 300s, 1.0, 300s}, {480s, 300s, 0.7, 300s}, {15s, 300s, -3.0, 15s},    {15s, 300s, 7.0, 12s},
  };
  for (const auto& r : rows) CHECK(probe_wait(r.step, r.interval, r.jitter01) == r.wait);
  CHECK(first_probe_wait(300s, 0.0) == 15s);
  CHECK(first_probe_wait(10s, 1.0) == 10s);  // an interval under 15 s: the first probe after it
  CHECK(first_probe_wait(24h, 1.0) == 12s);

  // A pause with jitter: the first probe within [12 s, 15 s] of it.
  TenantState t(TenantMode::apply, 4, 4, 300s);
  t.on_sent(kStart, false);
  t.on_finished(OutcomeKind::tenant_error, false, kStart, "RESPONSE_SIGNATURE_BAD_SIGNATURE", "", 0.25);
  CHECK(t.pause()->next_probe_at == kStart + 14250ms);
}

TEST_CASE("an applied request sent before the pause does not resume the tenant", "[tenant_state]") {
  TenantState t(TenantMode::apply, 4, 4, 60s);
  t.on_sent(kStart, false);
  t.on_sent(kStart, false);
  t.on_finished(OutcomeKind::tenant_error, false, kStart + 1s, "NO_AUTH", "");
  CHECK(t.on_finished(OutcomeKind::applied, false, kStart + 2s, "", "") == TenantTransition::none);
  CHECK(t.paused_by_error());
}

TEST_CASE("pause survives observe mode, operator resume and restored pause", "[tenant_state]") {
  TenantState t(TenantMode::apply, 4, 4, 60s);
  t.on_sent(kStart, false);
  t.on_finished(OutcomeKind::tenant_error, false, kStart, "SIGN_ERROR", "");
  t.set_mode(TenantMode::observe);
  CHECK_FALSE(t.permission(kStart + 1h).allowed);
  t.set_mode(TenantMode::apply);
  CHECK(t.paused_by_error());
  CHECK(t.permission(kStart + 1h).probe);
  t.resume();
  CHECK_FALSE(t.paused_by_error());
  CHECK_FALSE(t.permission(kStart).probe);

  TenantState restarted(TenantMode::apply, 4, 4, 60s);
  restarted.restore_pause(TenantPause{"SIGN_ERROR", "from tenant_state", kStart, kStart + 30s});
  CHECK_FALSE(restarted.permission(kStart + 29s).allowed);
  CHECK(restarted.permission(kStart + 30s).probe);
  // The database keeps no backoff step: after the restored probe fails, 30 s (twice the first).
  restarted.on_sent(kStart + 30s, true);
  restarted.on_finished(OutcomeKind::tenant_error, true, kStart + 31s, "SIGN_ERROR", "");
  CHECK(restarted.pause()->next_probe_at == kStart + 61s);
}
