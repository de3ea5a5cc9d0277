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

TEST_CASE("tenant_error pauses, exactly one probe per interval, an applied probe resumes", "[tenant_state]") {
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
  CHECK(t.pause()->next_probe_at == failed_at + 300s);

  // The other request in flight fails the same way: still paused, schedule unchanged.
  CHECK(t.on_finished(OutcomeKind::tenant_error, false, failed_at + 10ms, "SIGN_ERROR", "again") ==
        TenantTransition::none);
  CHECK(t.pause()->next_probe_at == failed_at + 300s);

  // Nothing before the probe time, and the permission says when.
  auto p = t.permission(failed_at + 299s);
  CHECK_FALSE(p.allowed);
  REQUIRE(p.not_before.has_value());
  CHECK(*p.not_before == failed_at + 300s);

  // The probe: one, then nothing until the next interval even once it has come back.
  const Instant probe1 = failed_at + 300s;
  p = t.permission(probe1);
  CHECK(p.allowed);
  CHECK(p.probe);
  t.on_sent(probe1, true);
  CHECK_FALSE(t.permission(probe1).allowed);
  CHECK(t.on_finished(OutcomeKind::tenant_error, true, probe1 + 1s, "SIGN_ERROR", "still") ==
        TenantTransition::none);
  CHECK(t.paused_by_error());
  CHECK_FALSE(t.permission(probe1 + 1s).allowed);
  CHECK_FALSE(t.permission(probe1 + 299s).allowed);

  // A probe that is not applied (transient, rejected, 429) keeps the tenant paused.
  const Instant probe2 = probe1 + 300s;
  REQUIRE(t.permission(probe2).allowed);
  t.on_sent(probe2, true);
  CHECK(t.on_finished(OutcomeKind::transient, true, probe2 + 1s, "SYSTEM_ERROR", "") == TenantTransition::none);
  CHECK(t.paused_by_error());

  // An applied probe resumes the tenant; its full in-flight limit is back.
  const Instant probe3 = probe2 + 300s;
  REQUIRE(t.permission(probe3).probe);
  t.on_sent(probe3, true);
  CHECK(t.on_finished(OutcomeKind::applied, true, probe3 + 1s, "", "") == TenantTransition::resumed);
  CHECK_FALSE(t.paused_by_error());
  for (int i = 0; i < 4; ++i) {
    const auto q = t.permission(probe3 + 1s);
    REQUIRE(q.allowed);
    CHECK_FALSE(q.probe);
    t.on_sent(probe3 + 1s, false);
  }
  CHECK_FALSE(t.permission(probe3 + 1s).allowed);
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
}
