// How long a tenant lease lasts, and how long before it could lapse an instance stops
// dispatching requests for the tenant (several instances share one database,
// migrations/0003). Pure arithmetic on the config; never throws.
//
// The promise (architecture.md): no request of an instance reaches WeChat Pay after another
// instance may have taken the tenant over, i.e. after the lease lapsed. A request dispatched
// at `t` can put bytes on the wire until t + the send margin, counted from every phase:
//
//   pacing wait        0: the pacer's slot is taken at dispatch (the scheduler dispatches
//                      only a tenant whose slot is free now)
//   until the client   signing and the event loop's turn (dispatch_slack)
//   in the client      every phase is clipped to one overall deadline (http/https_client.h):
//                      a pool slot, then per host (primary, then the backup on failover)
//                      resolve + TCP connect + TLS handshake, each `connect_timeout`, then
//                      write + read `request_timeout`, the stale-connection retry included.
//                      The deadline is 2 x connect_timeout + request_timeout: room for one
//                      connection set-up on each host plus one exchange. A request's last byte
//                      is written before it, whatever fails.
//   clock slack        send_until is this instance's steady clock; the lease lapses on the
//                      database's clock (clock_slack)
//
// The lease is the margin plus the renewal window: how long an instance may keep sending
// after its last successful heartbeat (several heartbeats, so that one slow renewal does not
// stop it). Both grow with the timeouts, so a config that is accepted is always safe: with
// connect_timeout 10 s and request_timeout 5 s, the margin is 27 s (it was request_timeout +
// 2 s = 7 s, while the client could still write 25 s after dispatch).
#pragma once

#include "core/config.h"
#include "core/reconcile/time.h"

namespace callbackd::reconcile {

struct LeaseTuning {
  Duration dispatch_slack = std::chrono::seconds{1};
  Duration clock_slack = std::chrono::seconds{1};
  Duration renewal_window = std::chrono::seconds{8};  // four heartbeats of 2 s
};

// The HTTPS client's overall deadline for one request (https_client.h): no phase of it, and
// no byte of it, outlives this from the call.
Duration request_deadline(const WechatpayConfig& wechatpay);

struct LeaseTiming {
  Duration send_margin;  // stop dispatching this long before the lease could lapse
  Duration lease;        // how long a renewal holds the tenant
  // An owner PROVEN dead (same machine, process gone; migrations/0005) starts nothing any
  // more: no new connection, no failover. Only bytes it had already handed to the kernel may
  // still go out, within its last request's own write deadline: its tenants move after
  // dispatch_slack + request_timeout + clock_slack rather than the whole lease.
  Duration dead_owner_margin;
};

LeaseTiming lease_timing(const WechatpayConfig& wechatpay, const LeaseTuning& tuning = {});

// After a config reload (SIGHUP) changed the timeouts: requests dispatched before it keep
// their old deadline, so until `before`'s margin has passed since the reload the longer of the
// two applies (field by field).
LeaseTiming lease_timing_since_reload(const LeaseTiming& before, Instant reloaded_at, const LeaseTiming& after,
                                      Instant now);

// How much earlier every tenant stops dispatching after a reload that lengthened the client's
// deadlines: a request dispatched at the old send_until could outlive the lease granted before
// the reload. Zero when the deadlines did not grow.
Duration send_until_shift_after_reload(const LeaseTiming& before, const LeaseTiming& after);

// Until when this instance sends for the tenants a heartbeat renewed: `lease_until` is the
// lease's end counted from before the statement (the database's now() is no earlier), less the
// send margin; the larger of the margin the lease was asked with and the one in force now (a
// SIGHUP between the statement and its answer may have lengthened the client's deadlines).
Instant send_until(Instant lease_until, Duration margin_asked_with, Duration margin_now);

}  // namespace callbackd::reconcile
