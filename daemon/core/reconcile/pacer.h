// Pacing of requests per tenant (calling merchant) and across the whole daemon. Pure: `now`
// is a parameter; nothing here sleeps or reads a clock. Nothing throws (beyond allocation); a
// broken precondition (a rate below 1, a negative cap) is a bug and stops the process.
//
// What a tenant's Pacer promises (docs/product.md, "Pacing is smooth"): with R =
// rate_per_minute, a strict server that counts requests in ANY sliding 1-second window and
// ANY sliding 60-second window never sees more than
//     one_second_limit(R) = max(1, floor(R / 60 * 1.5))   and   R
// requests, PROVIDED each request reaches the server at most `arrival_jitter` after the
// instant it counts from (and not before it): its slot, or, once the caller reports it with
// written(), the instant it was written to its connection. The second is what the sender
// should report: signing, a wait for a pooled connection and a TLS handshake (one round trip
// or more to WeChat Pay, far more than 20 ms) then fall before that instant, and only the
// network's own variation is left for the margin to cover. The pacer guarantees this on the slots themselves: any
// R+1 consecutive slots span at least 60 s + arrival_jitter, and any one_second_limit+1
// consecutive slots span at least 1 s + arrival_jitter. Delaying each request by a different
// amount in [0, arrival_jitter) can then shrink a span by less than arrival_jitter, so no
// window of 1 s or 60 s on the server can hold more. (For R < 40 the literal 1-second figure
// is below one request, which no sender can meet; one request per second is what we hold.)
//
// How: a GCRA (virtual scheduling) with emission interval
//     T = max((60 s + J) / R_effective, (1 s + J) / one_second_limit)
// so slots are evenly spaced (smooth, never a burst at the top of a minute), plus two exact
// guards over the last R send times that make the guarantee hold whatever the GCRA allowed
// (after idle periods, catch-up, or a rate change). The GCRA lets the schedule run up to T/2
// behind `now`, so a caller woken a little late (timer slack) does not lose the slot: at worst
// two slots are T/2 apart, and the guards still hold.
//
// The cost of the margin J: a busy tenant gets R per (60 s + J) when the 60-second limit
// binds (99.97% of R for the default J = 20 ms), and one_second_limit per (1 s + J) when the
// 1-second limit binds. The latter only matters when one_second_limit is barely above R/60:
// at R = 60 (limit 1/s) it is 1/1.02 = 98.0% of R. That is why the default J is 20 ms and not
// more: a larger margin would protect against more arrival jitter but waste more quota at
// R = 60. For 40 < R < 80 the 1-second limit is 1 request, so at most 60 a minute are
// possible at all, whatever the pacer does.
//
// Adaptive on 429: each rate_limited outcome of a request sent after the last decrease
// multiplies the effective rate by `decrease_factor` (floor: min_rate_per_minute, 1 a minute,
// so that a limit far below R, such as 5 a minute per source address, is found too); a
// Retry-After blocks every slot before it; after that, every `recovery_interval` without a
// 429 adds recovery_step_fraction * R back, up to R. Only requests SENT after the last
// decrease can cause another one: with several requests in flight, one overload would
// otherwise be counted once per request and collapse the rate.
#pragma once

#include <cstddef>
#include <deque>
#include <vector>
#include <optional>

#include "core/reconcile/time.h"

namespace callbackd::reconcile {

struct PacerTuning {
  // Largest difference between two requests' delays from slot to arrival at WeChat Pay
  // (signing, connection-pool wait, network). See the header comment for the trade-off.
  Duration arrival_jitter = std::chrono::milliseconds{20};
  double decrease_factor = 0.5;    // on 429: effective rate *= this
  double min_rate_per_minute = 1;  // never below this (or R, if R is lower)
  Duration recovery_interval = std::chrono::seconds{5};
  double recovery_step_fraction = 0.05;  // per recovery_interval: + R * this
};

// max(1, floor(R / 60 * 1.5)), computed in integers: floor(R * 3 / 120).
int one_second_limit(int rate_per_minute);

// A pacer's history of send times, sorted: the one recorded at `slot` moves to `written_at`,
// the instant the request was written (never earlier), and the history stays sorted. A slot
// not in the history (already dropped from it) changes nothing. Pacer and ReadPacer
// (live_state.h) share it.
void count_from_write(std::deque<Instant>& sent, Instant slot, Instant written_at);

class Pacer {
 public:
  // rate_per_minute >= 1 (tenants.rate_per_minute has CHECK > 0). Memory: up to R send times.
  explicit Pacer(int rate_per_minute, PacerTuning tuning = {});

  int rate_per_minute() const noexcept { return rate_per_minute_; }
  // The operator changed tenants.rate_per_minute: the new limit applies from the next slot;
  // the send history is kept so the guards still cover requests already sent.
  void set_rate_per_minute(int rate_per_minute);

  // Requests somebody else sent for this calling merchant (the previous owner of the tenant,
  // another instance), at the given instants (before now, any order): they count in the 1 s
  // and 60 s guards exactly like our own, so a handover cannot overfill a window.
  void assume_sent(std::vector<Instant> sends);

  // The request given the slot `slot` (try_acquire's `now`) was written to its connection at
  // `written_at`: the window guards count it from then (never earlier than its slot). A slot
  // not found (older than the guards look, or the rate was lowered meanwhile) is ignored.
  // Only the guards move; the smooth schedule stays as it was.
  void written(Instant slot, Instant written_at);

  // The earliest instant >= now at which try_acquire would succeed (assuming no other call).
  Instant next_slot(Instant now) const;
  // Takes the slot at `now` if next_slot(now) <= now and records `now` as a send time.
  // Calls must have non-decreasing `now`.
  bool try_acquire(Instant now);

  // A request sent at `sent_at` came back rate_limited at `now`. Retry-After, if any, blocks
  // every slot before now + retry_after.
  void on_rate_limited(Instant now, Instant sent_at, std::optional<Duration> retry_after);

  // After the rate was raised: the next slot one interval at the new rate after the last
  // send, if that is sooner than the old schedule said (the window guards still hold).
  void respace(Instant now);

  // Resume at a rate learned earlier (learned_rates.h: persisted across a restart), as if a
  // 429 had just brought it there: recovery counts from `now`. At or above R: nothing.
  void resume_at(double rate_per_minute, Instant now);

  // For metrics: the rate in force at `now` (requests per minute, <= R), and whether the
  // pacer is below R or inside a Retry-After.
  double effective_rate_per_minute(Instant now) const;
  bool throttled(Instant now) const;
  // The emission interval at `now` (the smooth spacing of slots).
  Duration emission_interval(Instant now) const;

 private:
  Duration interval_at_rate(double rate_per_minute) const;
  Instant guard_slot() const;

  int rate_per_minute_;
  int one_second_limit_;
  PacerTuning tuning_;
  Instant tat_{};  // theoretical time of the next slot (GCRA)
  bool started_ = false;
  std::deque<Instant> sent_;  // the last <= R slot times, oldest first

  // Adaptation: the rate set by the last decrease, when recovery starts counting, and when.
  double decreased_rate_;  // per minute; == R when not decreased
  Instant recovery_from_{};
  Instant last_decrease_at_{};
  bool decreased_ = false;
  Instant retry_until_{};
};

// The daemon-wide cap (reconciler.global_rate_per_second; 0 = none), consulted by every
// tenant in addition to its own Pacer: the same smooth GCRA with catch-up of half an interval,
// no windows (it is our own limit, not a server's count).
class GlobalCap {
 public:
  explicit GlobalCap(double rate_per_second);
  bool unlimited() const noexcept { return interval_ == Duration::zero(); }
  Instant next_slot(Instant now) const;
  bool try_acquire(Instant now);

 private:
  Duration interval_{};
  Instant tat_{};
  bool started_ = false;
};

}  // namespace callbackd::reconcile
