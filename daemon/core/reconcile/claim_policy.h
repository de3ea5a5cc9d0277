// How many due rows the run loop claims for a tenant at once, and how long the claim holds
// them (the pending_work lease). Pure arithmetic; never throws. claim_gate.h decides whether
// to claim at all; this says how much and for how long.
#pragma once

#include <chrono>

#include "core/reconcile/time.h"

namespace callbackd::reconcile {

// About two seconds of sending at the rate the tenant's pacer allows now (lower after a 429):
// enough that the buffer never runs dry between claims, small enough that a pause, a shutdown
// or a crash holds back little, and that buffered rows go out within their lease even after
// 429s have cut the pacer. Six seconds was tried, for fewer claim statements when paced: under
// a long 429 storm the buffer then outlived its 30 s lease and rows were sent twice (the e2e
// pacing test "the server's limit is lower than configured", under TSan).
// Between 1 and 200 rows.
int claim_batch(double effective_rate_per_minute);

// The claim's lease outlives the buffer (about two seconds of sending) and a request's
// deadline by a wide margin, and is short enough that rows claimed by a crashed instance are
// taken over soon. A lapsed lease only means the row may be sent again: the endpoint is
// idempotent and the claim token fences the older attempt's record out. At least the tenant
// lease: a row dispatched at the end of it may still be in flight for the client's whole
// deadline (lease_timing.h).
std::chrono::milliseconds claim_lease(std::chrono::milliseconds request_timeout, Duration tenant_lease);

// The last instant a row of a claim asked for at `asked_at` with `lease` may be dispatched: a
// request dispatched then has written its last byte `send_margin` later (lease_timing.h),
// before the claim's lease (counted by the database from no earlier than asked_at) lapses and
// another claim, of this instance or another, may take the row. A buffered row not sent by
// then is given back rather than sent: sent, it could be in flight twice. Batches are two
// seconds of sending, so this only bites when the pacer has slowed far below the rate the
// batch was claimed at (a long 429 storm).
Instant claim_send_by(Instant asked_at, std::chrono::milliseconds lease, Duration send_margin);

}  // namespace callbackd::reconcile
