#include "core/reconcile/claim_gate.h"

namespace callbackd::reconcile {

namespace {
// A wake-up only counts when it is still ahead: one that has passed says nothing new.
std::optional<Instant> ahead(std::optional<Instant> at, Instant now) { return at && *at > now ? at : std::nullopt; }
}  // namespace

ClaimDecision decide_claim(const ClaimInputs& in, Instant now) {
  if (in.stopping || !in.sends || in.claim_pending) return {};
  int limit = in.batch;
  if (in.endpoint_held && (!in.endpoint.allowed || in.buffered > 0))
    return {0, ahead(in.endpoint.not_before, now)};  // nullopt: the probe in flight or buffered
  if (in.paused_by_error) {
    if (!in.tenant.allowed || in.buffered > 0) return {0, ahead(in.tenant.not_before, now)};
    limit = 1;
  } else if (in.endpoint_held) {
    limit = 1;
  } else if (static_cast<int>(in.buffered) > in.batch / 2) {
    return {};  // dispatches empty the buffer, and each wakes the loop
  }
  const bool due_later_now_due = in.next_due_at && *in.next_due_at <= now;
  if (in.drained && !due_later_now_due) return {0, in.buffered == 0 ? ahead(in.next_due_at, now) : std::nullopt};
  return {limit, std::nullopt};
}

ClaimRest rest_after_no_claim(const ClaimInputs& in, bool in_flight, Instant now) {
  if (in.stopping || in.claim_pending || in.buffered > 0 || in_flight) return {};
  if (!in.sends) return {true, std::nullopt};
  // A row that fell due is claimed once the gates (a hold, a pause) open: keep looking.
  if (!in.drained || (in.next_due_at && *in.next_due_at <= now)) return {};
  return {true, in.next_due_at};
}

}  // namespace callbackd::reconcile
