// The egress cap per source address (wechatpay.egress_rate_per_minute, source_addresses): set
// calls leaving this instance from one local address, whatever the tenant. Pure: `now` is a
// parameter; nothing here reads a clock. Never throws (beyond allocation).
//
// Why: WeChat Pay documents the set call's limit two ways, 1000 a minute per calling merchant
// and, on an older page, also 5 a minute "单ip" (from one source IP, whatever the merchant).
// A tenant's Pacer holds the first; this holds the second. Each source address is a lane with
// its own cap, enforced with the same Pacer (pacer.h) at R = egress_rate_per_minute, so a
// strict server counting requests per remote address in any 1 s and any 60 s window sees at
// most one_second_limit(R) and R from each address (the Pacer's promise, arrival jitter
// included). Without a cap a lane is unlimited.
//
// Lanes are used in turn: try_acquire() takes the first lane free at `now` after the one it
// used last, so with k addresses and a busy daemon each address carries 1/k of the requests,
// and k addresses carry k times one address's cap. The FairScheduler asks for an egress slot
// only for a tenant that is otherwise ready, in its round-robin order, so tenants share the
// cap fairly (scheduler.h).
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <utility>
#include <optional>
#include <vector>

#include "core/reconcile/pacer.h"
#include "core/reconcile/time.h"

namespace callbackd::reconcile {

class EgressLanes {
 public:
  // `addresses` >= 1 (no source_addresses configured: one lane, the kernel's choice);
  // `rate_per_minute` the cap of each lane (nullopt: none; else >= 1).
  explicit EgressLanes(std::size_t addresses = 1, std::optional<int> rate_per_minute = std::nullopt,
                       PacerTuning tuning = {});

  std::size_t size() const noexcept { return lanes_.size(); }
  bool capped() const noexcept { return rate_per_minute_.has_value(); }

  // The earliest instant >= now at which some lane has a slot.
  Instant next_slot(Instant now) const;
  // Takes a slot on the first lane free at `now` after the lane used last, and returns that
  // lane's index (the source address to bind); nullopt when none is free.
  std::optional<std::size_t> try_acquire(Instant now);

  // A request of `tenant` through `lane`, sent at `sent_at`, answered 429 at `now`. Read as
  // the ADDRESS's limit when another tenant was refused through the same lane within the
  // last 60 s (one tenant's limit does not refuse another tenant): then a capped lane slows
  // down like a tenant's pacer (halved, never below 1 a minute, recovering by 5% of its cap
  // every 5 s; the Retry-After blocks the lane), and true is returned: the caller leaves the
  // tenant's own rate alone. Otherwise (a single tenant refused, or an uncapped lane, which
  // has no rate to lower) false: the tenant's pacer slows down, as before.
  bool on_rate_limited(std::size_t lane, const std::string& tenant, Instant now, Instant sent_at,
                       std::optional<Duration> retry_after);

  // Requests a minute all lanes together allow at `now`; nullopt when unlimited. What a
  // tenant can expect to get of them decides how many rows it claims (claim_policy.h).
  std::optional<double> effective_rate_per_minute(Instant now) const;

 private:
  struct Lane {
    std::optional<Pacer> cap;  // nullopt: uncapped
    // The 429s of the last 60 s through this lane: (when, tenant), oldest first.
    std::deque<std::pair<Instant, std::string>> refusals;
  };
  std::optional<int> rate_per_minute_;
  std::vector<Lane> lanes_;
  std::size_t last_used_ = 0;
};

// The rate a tenant can send at now: its own pacer's, or its fair share of the egress caps
// when those are lower (`tenants_sharing`: the tenants with rows to send, at least 1).
double sending_rate_per_minute(double tenant_rate, std::optional<double> egress_rate, std::size_t tenants_sharing);

}  // namespace callbackd::reconcile
