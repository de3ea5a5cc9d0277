// How many due rows the run loop claims for a tenant at once, and how long the claim holds
// them (the pending_work lease). Pure arithmetic; never throws. claim_gate.h decides whether
// to claim at all; this says how much and for how long.
#pragma once

#include <chrono>

#include "core/reconcile/time.h"

namespace callbackd::reconcile {

// About six seconds of sending at the rate the tenant's pacer allows now (lower after a 429):
// enough that the buffer never runs dry between claims, and that a paced tenant costs a claim
// statement every few seconds, not every second or two (docs/benchmarks.md, round trips);
// small enough that a pause, a shutdown or a crash holds back little, and that buffered rows
// go out well within their lease: the gate (claim_gate.h) claims again when half a batch is
// left, so at most 1.5 batches, 9 s at the rate of the claim, wait in the buffer, against a
// claim_lease of at least 30 s. That leaves room for the pacer to halve the rate once after the
// claim (a 429) and then slow a little more; a row that still outlives its claim may be sent
// again (idempotent; the newer claim token fences the older record out). Between 1 and 200
// rows: 200 is six seconds at 2,000 a minute, twice WeChat Pay's limit per calling merchant.
int claim_batch(double effective_rate_per_minute);

// The claim's lease outlives the buffer (at most about nine seconds of sending) and a request's
// deadline by a wide margin, and is short enough that rows claimed by a crashed instance are
// taken over soon. A lapsed lease only means the row may be sent again: the endpoint is
// idempotent and the claim token fences the older attempt's record out. At least the tenant
// lease: a row dispatched at the end of it may still be in flight for the client's whole
// deadline (lease_timing.h).
std::chrono::milliseconds claim_lease(std::chrono::milliseconds request_timeout, Duration tenant_lease);

}  // namespace callbackd::reconcile
