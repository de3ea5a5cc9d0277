// What this instance does with the tenants a heartbeat says it holds (ownership.h): which it
// hands over, and what it assumes about a tenant it has just taken over. Pure; `now` is a
// parameter; never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/reconcile/ownership.h"
#include "core/reconcile/time.h"

namespace callbackd::reconcile {

// Rate shares (migrations/0013_rate_shares.sql; the same formulas as its SQL functions
// callbackd.rate_shares and callbackd.share_rate, which tests/pg compares with these): a
// tenant's rate_per_minute R is cut into one share per 40 a minute, at least 1, at most 8;
// share u may send R / n a minute, the first R mod n shares one more. Every share is thus at
// least 40 a minute (or the whole of a smaller R), so the shares' 1-second limits
// (floor(rate / 60 * 1.5), pacer.h) add up to at most the tenant's.
inline constexpr int kMaxRateShares = 8;
int rate_shares(int rate_per_minute);
// 0 for a share beyond the count (the rate was lowered): it is to be given up.
int share_rate(int rate_per_minute, int share);

// A share of a tenant's rate this instance holds (migrations/0013).
struct HeldShare {
  std::string tenant_id;
  int share = 0;
  bool releasing = false;  // already being handed over
};

// Fair-share hand-over: walking the held shares in the order given (the lease keeper's: share
// 0 of every tenant, then share 1, ...), every one that is
// not already being handed over counts against the fair share (ceil(shares / live
// instances)); those beyond it are handed over, so that instances with room take them. The
// caller stops sending at their rate at once and gives them up at the next heartbeat (a
// tenant's last share once its requests in flight are done).
std::vector<ShareKey> shares_to_hand_over(const std::vector<HeldShare>& held, int fair_share);

// The send times a new owner's pacer counts for a tenant taken over: the previous owner's
// recent requests (their ages by the database clock), plus, at `now`, as many again as it may
// have had in flight, unrecorded (max_in_flight). None when it sent nothing within the last
// minute: then it cannot have had any in flight either.
std::vector<Instant> assumed_sends_after_takeover(const std::vector<std::chrono::milliseconds>& recent_sends,
                                                  int max_in_flight, Instant now);

// Whether a heartbeat's answer lets this instance go on sending for the tenants it lists
// (migrations/0007_instance_leases.sql): only when its epoch is the one the previous answer
// carried. Another instance changes the epoch, under the lock of our row, before it takes
// tenants of ours over (our lease had lapsed); a renewal that sees a new epoch may have read
// the leases before that takeover committed, so what it lists is trusted from the next
// heartbeat on, whose snapshot comes after it. With no previous answer (the first, or every
// earlier one lost after it committed) there is nothing to compare with: the answer confirms
// only if it lists no lease held from before it (`holds_earlier_leases`), as a new instance's
// first heartbeat does.
bool renewal_confirms_holding(std::optional<std::int64_t> previous_epoch, std::int64_t epoch,
                              bool holds_earlier_leases);

}  // namespace callbackd::reconcile
