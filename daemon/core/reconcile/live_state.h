// Reading back what WeChat Pay holds (issue 15; docs/sql.md, "Live state"): the pure decisions
// behind adoption, drift checks and their pacing. No I/O, no clock reads: `now` is a parameter.
//
// - ReadPacer: GET /v3/marketing/favor/callbacks has its own rate
//   (wechatpay.read_rate_per_second), shared by every tenant of the instance, round-robin among
//   those with reads waiting, and never a slot of a tenant's set-call Pacer (pacer.h): reads are
//   documented at 2000 QPS, sets at 1000 a minute, and a read must never delay a set. Any R+1
//   consecutive read slots span at least 1 s + arrival_jitter, so a server counting reads in any
//   sliding second sees at most R. A 429 on a read slows the read pacer only (halved, never below
//   R/16, 5% of R back every 5 s), as a tenant's 429 slows its own Pacer.
// - should_adopt: adoption compares the notify_url only, byte for byte: the switch cannot be
//   read back. A live setting is assumed to push (WeChat Pay's pages say turning pushes off
//   through the API is not supported yet), so only a desired switch NULL or true adopts.
// - next_drift_check_in: each row's check falls on its own phase of the interval, taken from a
//   hash of its mchid, so that a million rows applied in one afternoon are still read back
//   evenly over the whole interval, each exactly once per interval.
// - plan_drift_claim: which tenants a claim of due drift checks asks for, and how many rows
//   each, so that what is claimed can be read well within a claim's lease.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/reconcile/pacer.h"
#include "core/reconcile/time.h"

namespace callbackd::reconcile {

class ReadPacer {
 public:
  // rate_per_second > 0 (wechatpay.read_rate_per_second: 1 to 2000).
  explicit ReadPacer(double rate_per_second, Duration arrival_jitter = std::chrono::milliseconds{20});

  void set_rate(double rate_per_second);
  double rate_per_second() const noexcept { return rate_; }

  Instant next_slot(Instant now) const;
  // Takes the slot at `now` if next_slot(now) <= now. Calls must have non-decreasing `now`.
  bool try_acquire(Instant now);
  // The read given the slot `slot` was written to its connection at `written_at`: the 1-second
  // guard counts it from then (Pacer::written, for the same reason).
  void written(Instant slot, Instant written_at) { count_from_write(sent_, slot, written_at); }
  // A read sent at `sent_at` was answered 429 at `now`.
  void on_rate_limited(Instant now, Instant sent_at, std::optional<Duration> retry_after);
  double effective_rate_per_second(Instant now) const;

 private:
  Duration interval(Instant now) const;
  std::size_t window_limit() const;

  double rate_;
  Duration jitter_;
  Instant tat_{};
  bool started_ = false;
  std::deque<Instant> sent_;  // the last window_limit() slot times
  double decreased_rate_;
  bool decreased_ = false;
  Instant recovery_from_{};
  Instant last_decrease_at_{};
  Instant retry_until_{};
};

// Whether a row never applied by callbackd is adopted: recorded in sync without a POST.
// `live_notify_url` "" means nothing is set (never adopted: an empty URL is not a setting).
bool should_adopt(std::string_view desired_notify_url, std::optional<bool> desired_switch,
                  std::string_view live_notify_url);

// Whether a read-back of an in-sync row found drift: the live notify_url is not the applied
// one ("" when nothing is set any more is drift too).
bool is_drift(std::string_view applied_notify_url, std::string_view live_notify_url);

// When the row's next drift check is due, from `wall_now` (system clock, so that every instance
// and every restart agrees on a row's phase): the next instant after wall_now that is at the
// row's phase of `interval`, at least `min_delay` away (a row just applied is not read back at
// once). interval > 0.
Duration next_drift_check_in(std::string_view sub_mchid, Duration interval,
                             std::chrono::system_clock::time_point wall_now,
                             Duration min_delay = std::chrono::seconds{1});

// next_drift_check_in for `interval` as configured (reconciler.drift_check_interval): zero when
// checks are off, so that a row is due at once when they are turned on.
Duration drift_check_due_in(std::string_view sub_mchid, Duration interval,
                            std::chrono::system_clock::time_point wall_now);

// One claim of due drift checks. `tenants`: the tenants this instance sends for, in a stable
// order; `cursor`: where the previous claim stopped (an index into tenants, any value);
// `budget`: rows to claim at most (reads the pacer can do in a few seconds). At most `budget`
// tenants are asked (from the cursor on, wrapping), each for max(1, budget / asked) rows.
struct DriftClaimPlan {
  std::vector<std::string> tenants;
  int per_tenant = 0;
  std::size_t next_cursor = 0;
};
DriftClaimPlan plan_drift_claim(const std::vector<std::string>& tenants, std::size_t cursor, int budget);

}  // namespace callbackd::reconcile
