// The one time base of the reconciler's decisions.
//
// Every function in core/reconcile takes `now` as a parameter and never reads a clock, so
// tests drive a million simulated seconds in milliseconds and the daemon passes
// std::chrono::steady_clock::now(). Monotonic on purpose: a pacer that followed the wall
// clock would send a burst when NTP steps the clock forward (it would believe a minute had
// passed) and stall when it steps back.
//
// Deadlines that are persisted (sub_merchant_state.next_attempt_at, tenant_state.next_probe_at)
// are also returned as a delay from `now`, so the store can write `now() + delay` in SQL and
// never has to convert between the monotonic and the wall clock.
#pragma once

#include <chrono>

namespace callbackd::reconcile {

using Clock = std::chrono::steady_clock;
using Instant = Clock::time_point;
using Duration = Clock::duration;

// Seconds (possibly fractional) as a Duration, rounded UP to the clock's tick: the pacer
// must never hand out a slot earlier than its arithmetic allows.
inline Duration ceil_duration(std::chrono::duration<double> seconds) { return std::chrono::ceil<Duration>(seconds); }

}  // namespace callbackd::reconcile
