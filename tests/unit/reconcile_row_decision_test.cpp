// The per-row decision after an attempt: one table row per OutcomeKind.
#include <catch2/catch.hpp>

#include "core/reconcile/row_decision.h"
#include "reconcile_test_support.h"

using namespace callbackd;
using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;
using wechatpay::OutcomeKind;
using namespace std::chrono_literals;

namespace {
const Instant kNow = kStart;

RowPolicy policy() {
  RowPolicy p;
  p.retry = RetryPolicy{1s, 300s};
  p.tenant_probe_interval = 300s;
  p.rate_limited_delay = 1s;
  return p;
}
}  // namespace

TEST_CASE("decide_after_attempt: every outcome kind", "[row_decision]") {
  struct Row {
    OutcomeKind outcome;
    std::optional<std::chrono::seconds> retry_after;
    int prior_failures;
    double uniform01;
    RowState state;
    bool remove_from_queue;
    std::optional<Duration> delay;  // nullopt: removed, no delay
    int attempts;
    bool counts_as_failure;
    bool pause_tenant;
  };
  const std::vector<Row> table = {
      // applied: in sync, dequeued; attempts = how many it took.
      {OutcomeKind::applied, std::nullopt, 0, 0.5, RowState::in_sync, true, std::nullopt, 1, false, false},
      {OutcomeKind::applied, std::nullopt, 3, 0.5, RowState::in_sync, true, std::nullopt, 4, false, false},
      // rejected: failed, parked until the desired revision changes.
      {OutcomeKind::rejected, std::nullopt, 0, 0.5, RowState::failed, true, std::nullopt, 1, true, false},
      {OutcomeKind::rejected, std::nullopt, 2, 0.5, RowState::failed, true, std::nullopt, 3, true, false},
      // transient: retrying with backoff (u = 0 -> initial; u = 1 -> ceiling 2^n s).
      {OutcomeKind::transient, std::nullopt, 0, 0.0, RowState::retrying, false, Duration{1s}, 1, true, false},
      {OutcomeKind::transient, std::nullopt, 0, 1.0, RowState::retrying, false, Duration{2s}, 1, true, false},
      {OutcomeKind::transient, std::nullopt, 4, 1.0, RowState::retrying, false, Duration{32s}, 5, true, false},
      {OutcomeKind::transient, std::nullopt, 50, 1.0, RowState::retrying, false, Duration{300s}, 51, true, false},
      // transient with Retry-After (503): the later of the two.
      {OutcomeKind::transient, std::chrono::seconds{120}, 0, 1.0, RowState::retrying, false, Duration{120s}, 1, true,
       false},
      {OutcomeKind::transient, std::chrono::seconds{1}, 4, 1.0, RowState::retrying, false, Duration{32s}, 5, true,
       false},
      // rate_limited: back in the queue after Retry-After or the short delay; not a failure.
      {OutcomeKind::rate_limited, std::chrono::seconds{30}, 2, 0.5, RowState::pending, false, Duration{30s}, 2, false,
       false},
      {OutcomeKind::rate_limited, std::nullopt, 2, 0.5, RowState::pending, false, Duration{1s}, 2, false, false},
      // tenant_error: the row stays pending and due; the tenant is paused.
      {OutcomeKind::tenant_error, std::nullopt, 1, 0.5, RowState::pending, false, Duration{0s}, 1, false, true},
      // invalid: never sent, dequeued until changed.
      {OutcomeKind::invalid, std::nullopt, 0, 0.5, RowState::invalid, true, std::nullopt, 0, false, false},
  };
  for (const auto& row : table) {
    INFO("outcome " << wechatpay::outcome_name(row.outcome) << ", prior failures " << row.prior_failures << ", u "
                    << row.uniform01);
    const auto d =
        decide_after_attempt({row.outcome, row.retry_after, row.prior_failures}, policy(), kNow, row.uniform01);
    CHECK(row_state_name(d.state) == row_state_name(row.state));
    CHECK(d.remove_from_queue == row.remove_from_queue);
    CHECK(d.attempts == row.attempts);
    CHECK(d.counts_as_failure == row.counts_as_failure);
    CHECK(d.pause_tenant == row.pause_tenant);
    if (row.delay) {
      REQUIRE(d.next_attempt_at.has_value());
      CHECK(d.delay == *row.delay);
      CHECK(*d.next_attempt_at == kNow + *row.delay);
    } else {
      CHECK_FALSE(d.next_attempt_at.has_value());
    }
    if (row.pause_tenant) CHECK(d.tenant_probe_delay == 300s);
  }
}

TEST_CASE("every OutcomeKind has a decision and a state name", "[row_decision]") {
  for (auto kind : {OutcomeKind::applied, OutcomeKind::rejected, OutcomeKind::tenant_error, OutcomeKind::rate_limited,
                    OutcomeKind::transient, OutcomeKind::invalid}) {
    const auto d = decide_after_attempt({kind, std::nullopt, 0}, policy(), kNow, 0.5);
    CHECK_FALSE(row_state_name(d.state).empty());
    // Either the row leaves the queue or it has a time to come back.
    CHECK(d.remove_from_queue != d.next_attempt_at.has_value());
  }
}

TEST_CASE("row policy comes from reconciler config", "[row_decision]") {
  ReconcilerConfig config;
  config.tenant_probe_interval = Millis{60'000};
  const auto p = RowPolicy::from_config(config);
  CHECK(p.tenant_probe_interval == 60s);
  CHECK(p.retry.initial_backoff == config.retry_initial_backoff);
  const auto d = decide_after_attempt({OutcomeKind::tenant_error, std::nullopt, 0}, p, kNow, 0.5);
  CHECK(d.tenant_probe_delay == 60s);
}
