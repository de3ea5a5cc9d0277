// What happens to one sub-merchant's row after an attempt: a pure function from the outcome
// (core/wechatpay/outcome.h) to the row's next state and its place in the work queue
// (callbackd.pending_work, sub_merchant_state in migrations/0001_init.sql).
//
// The table (docs/product.md, "Behaviour that users will rely on"):
//   applied       -> in_sync; the queue entry of the claimed revision is removed. The store
//                    records applied_notify_url / applied_switch (what was sent) and
//                    applied_revision = the claimed revision: what diff.h compares next time.
//   rejected      -> failed; removed from the queue: parked until the desired row changes
//                    (a new revision re-queues it through the database trigger).
//   transient     -> retrying; stays queued, due at now + retry_backoff(failures), or after
//                    the server's Retry-After if that is later.
//   rate_limited  -> state unchanged, stays queued, due after Retry-After (or
//                    rate_limited_delay); NOT counted as a failure of the row: the tenant was
//                    too fast, the row did nothing wrong. The tenant's Pacer slows down.
//   tenant_error  -> state unchanged, stays queued and due: the row is not blamed. The tenant
//                    is paused (reason, next probe at now + tenant_probe_interval) and its
//                    gate (TenantState), not the row, holds the row back.
//   invalid       -> invalid; removed from the queue until the desired row changes.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "core/config.h"
#include "core/reconcile/backoff.h"
#include "core/reconcile/time.h"
#include "core/wechatpay/outcome.h"

namespace callbackd::reconcile {

// The row states of callbackd.sync_status. `pending` here means "not settled": the store
// leaves sub_merchant_state.state as it was (absent, or `retrying` from an earlier attempt)
// and sync_status keeps showing what it showed.
// `drifted` (migrations/0011) is never decided after an attempt: a drift check finds it (the
// live value differs from the applied one), and the row's next apply ends it.
enum class RowState { in_sync, pending, retrying, failed, invalid, drifted };
std::string_view row_state_name(RowState state);  // "in_sync", "pending", ...

struct RowPolicy {
  RetryPolicy retry;
  Duration tenant_probe_interval = std::chrono::minutes{5};
  // A 429 without Retry-After: the row is due again after this; the tenant's Pacer decides
  // when it actually goes out.
  Duration rate_limited_delay = std::chrono::seconds{1};

  static RowPolicy from_config(const ReconcilerConfig& config);
};

struct AttemptResult {
  wechatpay::OutcomeKind outcome = wechatpay::OutcomeKind::transient;
  std::optional<std::chrono::seconds> retry_after;  // Outcome::retry_after
  int prior_failures = 0;  // counted failures of this revision before this attempt (sub_merchant_state.attempts)
};

struct RowDecision {
  RowState state = RowState::pending;
  // Delete the pending_work entry of the claimed revision (DELETE ... AND revision = claimed:
  // a newer revision that arrived meanwhile stays queued).
  bool remove_from_queue = false;
  // When the entry is kept: due again at next_attempt_at == now + delay. The store writes
  // due_at / next_attempt_at as `now() + delay` so no clock conversion is needed.
  Duration delay{};
  std::optional<Instant> next_attempt_at;
  // The new sub_merchant_state.attempts: counted failures of this revision (applied: the
  // attempts it took, including this one).
  int attempts = 0;
  bool counts_as_failure = false;  // this attempt was the row's fault or bad luck (not 429/tenant)
  bool pause_tenant = false;       // tenant_error: TenantState::on_finished pauses the tenant
  Duration tenant_probe_delay{};   // set with pause_tenant: next probe at now + this
};

// `uniform01` in [0, 1] picks the jitter of a transient retry (ignored otherwise).
// Never throws; asserts prior_failures >= 0.
RowDecision decide_after_attempt(const AttemptResult& attempt, const RowPolicy& policy, Instant now, double uniform01);

}  // namespace callbackd::reconcile
