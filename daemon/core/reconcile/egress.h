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
#include <map>
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
  // `learn`: whether an uncapped lane learns a cap from 429s (below); the daemon's lanes do,
  // a FairScheduler without set_egress() has one lane that never does (as before issue 17).
  enum class Learn { no, yes };
  explicit EgressLanes(std::size_t addresses = 1, std::optional<int> rate_per_minute = std::nullopt,
                       Learn learn = Learn::no, PacerTuning tuning = {});

  std::size_t size() const noexcept { return lanes_.size(); }
  // egress_rate_per_minute was configured (a lane may also have learned a cap without it).
  bool capped() const noexcept { return rate_per_minute_.has_value(); }

  // The earliest instant >= now at which some lane has a slot (raising learned caps whose
  // time came first).
  Instant next_slot(Instant now);
  // Takes a slot on the first lane free at `now` after the lane used last, and returns that
  // lane's index (the source address to bind); nullopt when none is free.
  std::optional<std::size_t> try_acquire(Instant now);

  // The request given a slot of `lane` at `slot` was written at `written_at` (Pacer::written).
  void written(std::size_t lane, Instant slot, Instant written_at);

  // A request of `tenant` through `lane`, sent at `sent_at`, answered 429 at `now`. Read as
  // the ADDRESS's limit when another tenant was refused through the same lane within the
  // last 60 s (one merchant's limit does not refuse another merchant), or when the lane has
  // learned a cap already (below): then true is returned, and the caller leaves the tenant's
  // own rate alone. A lane capped by egress_rate_per_minute slows down like a tenant's pacer
  // (halved, never below 1 a minute, recovering by 5% of its cap every 5 s; the Retry-After
  // blocks the lane). An uncapped lane LEARNS a cap: what the address let through in the
  // last 60 s (the requests sent through it less those refused; over a shorter history
  // scaled up to a minute, the history counted as at least 1 s), at least 1 a minute, held
  // from then on in the server's windows (pacer.h). A learned cap is learned again at each
  // later 429 through the lane, never higher, and raised by 10% (at least 1) after every 5
  // minutes without one, so that it follows a limit that was raised. Otherwise (one tenant
  // refused through an uncapped lane) false: the tenant's pacer slows down, as before.
  bool on_rate_limited(std::size_t lane, const std::string& tenant, Instant now, Instant sent_at,
                       std::optional<Duration> retry_after);

  // What each lane has learned (learned_rates.h): by lane, the rate it holds at `now` when
  // it learned a cap or is below egress_rate_per_minute.
  std::map<std::size_t, double> learned(Instant now) const;
  // A lane's rate read back at start-up, `age` old: moved back towards the configured cap by
  // its age (restored_rate()), a capped lane resumes at it, an uncapped one holds it as a
  // learned cap (as if learned over a minute), or none once it aged out.
  void restore(std::size_t lane, double rate_per_minute, Duration age, Instant now);

  // Requests a minute all lanes together allow at `now`; nullopt when unlimited. What a
  // tenant can expect to get of them decides how many rows it claims (claim_policy.h).
  std::optional<double> effective_rate_per_minute(Instant now) const;

 private:
  struct Lane {
    std::optional<Pacer> cap;  // nullopt: uncapped
    // The 429s of the last 60 s through this lane: (when, tenant), oldest first.
    std::deque<std::pair<Instant, std::string>> refusals;
    // Lanes that may learn (uncapped, or learned): their sends and 429s of the last 60 s,
    // and their first send.
    std::deque<Instant> sent;
    std::deque<Instant> refused;
    std::optional<Instant> first_sent;
    bool learned = false;  // `cap` was learned (no egress_rate_per_minute)
    Instant learned_at{};  // when it was last learned or raised
  };
  // A learned cap raised when its time came without a refusal read as the address's.
  void probe_upwards(Lane& lane, Instant now);
  // The cap an uncapped lane learns when its address's limit shows at `now`.
  static int learned_cap(const Lane& lane, Instant now);

  PacerTuning tuning_;
  Learn learn_;
  std::optional<int> rate_per_minute_;
  std::vector<Lane> lanes_;
  std::size_t last_used_ = 0;
};

// The rate a tenant can send at now: its own pacer's, or its fair share of the egress caps
// when those are lower (`tenants_sharing`: the tenants with rows to send, at least 1).
double sending_rate_per_minute(double tenant_rate, std::optional<double> egress_rate, std::size_t tenants_sharing);

}  // namespace callbackd::reconcile
