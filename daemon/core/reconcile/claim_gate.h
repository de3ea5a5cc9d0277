// Whether the run loop claims a tenant's due rows now, how many, and when the passing of time
// alone could change that. Pure: `now` is a parameter; never throws.
//
// Rows are claimed (pending_work leases taken) only as far ahead of sending as needed:
//  - not while the tenant does not send here (mode, lease), a claim is already out, or the
//    daemon is stopping;
//  - while WeChat Pay is held as unreachable (EndpointHold): one row for the endpoint's probe
//    once it may go, none before (a claimed row waiting out the hold's backoff could outlive
//    its lease and be sent twice);
//  - while the tenant is paused by an error: one row for its probe once it may go;
//  - otherwise: a batch whenever the buffer is down to half a batch, unless the last claim
//    drained the tenant and nothing it said was due later has fallen due yet.
//
// `wake_at` is for the loop's timer, and is never `now` or earlier: a due instant that has
// passed while a gate is shut (the hold, the pause) is not a reason to wake; the gate's own
// opening is. (A past wake-up is a hot loop: the timer fires at once, the loop finds nothing
// to do, and sets it again — about 5,000 turns a second while WeChat Pay was held, issue 13.)
#pragma once

#include <cstddef>
#include <optional>

#include "core/reconcile/endpoint_hold.h"
#include "core/reconcile/tenant_state.h"
#include "core/reconcile/time.h"

namespace callbackd::reconcile {

struct ClaimInputs {
  bool stopping = false;
  bool sends = true;                   // the tenant is scheduled in mode apply (its mode, the lease held here)
  bool claim_pending = false;          // a claim for it is out; its completion wakes the loop
  std::size_t buffered = 0;            // claimed rows not yet dispatched
  bool drained = false;                // the last claim found fewer due rows than asked for
  std::optional<Instant> next_due_at;  // the last claim's "first row due later" (nullopt: none)
  int batch = 1;                       // rows per claim at the tenant's current rate
  bool endpoint_held = false;
  EndpointPermission endpoint;  // EndpointHold::permission(now)
  bool paused_by_error = false;
  SendPermission tenant;  // TenantState::permission(now)
};

struct ClaimDecision {
  int limit = 0;  // rows to claim now; 0: none
  // Without a claim: the earliest instant after `now` at which one might become possible by
  // time alone (nullopt: only an event can: a completion, a NOTIFY, a heartbeat).
  std::optional<Instant> wake_at;
};

ClaimDecision decide_claim(const ClaimInputs& in, Instant now);

// Whether the run loop may stop looking at a tenant that it claims nothing for now, and until
// when (attention.h). Only while nothing of the tenant is claimed, buffered or in flight, and
// only when decide_claim's answer can change by no instant but the tenant's next due row:
//  - it does not send here (mode, lease): an event makes it send again (a lease acquired or
//    renewed, the tenants re-read), and that event wakes it; until: nullopt;
//  - its last claim drained it: until its next due row falls due (nullopt: none), or an event
//    (a NOTIFY, the poll, a hold ending) that wakes it. A pause or a hold only ever lowers what
//    a drained tenant claims (none), so their probe times are no reason to look at it.
struct ClaimRest {
  bool sleeps = false;
  std::optional<Instant> until;
};

ClaimRest rest_after_no_claim(const ClaimInputs& in, bool in_flight, Instant now);

}  // namespace callbackd::reconcile
