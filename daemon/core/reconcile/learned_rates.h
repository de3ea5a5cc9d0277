// What the daemon learned from 429s about the server's limits (a tenant's effective rate below
// its rate_per_minute, a source address's egress cap), kept in callbackd.learned_rates
// (migrations/0012_learned_rates.sql) so that a restart resumes at the rates found instead of
// finding them again with a burst of 429s. Pure: ages and `now` are parameters.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/reconcile/time.h"

namespace callbackd::reconcile {

enum class LearnedScope { tenant, source_address };
std::string_view learned_scope_name(LearnedScope scope);  // "tenant", "source_address"
std::optional<LearnedScope> learned_scope_from(std::string_view name);

struct LearnedRate {
  LearnedScope scope = LearnedScope::tenant;
  // The tenant_id, or the source address as configured ("" for the kernel's choice).
  std::string key;
  // Requests a minute; nullopt in a change: forget the row (back at the configured rate).
  std::optional<double> rate_per_minute;
  Duration age{};  // read back: how long ago it was written
};

// Learned rates move back towards what is configured as they age, linearly over this long,
// so that a limit that was lifted meanwhile is not held for ever.
inline constexpr Duration kLearnedRateDecay = std::chrono::hours{1};

// The rate to resume at, `age` after `learned` was written: towards `configured` (a tenant's
// rate_per_minute, an address's egress_rate_per_minute), reached after kLearnedRateDecay.
// Without a configured rate (an address that learned its cap without one) it rises to twice
// the learned rate over kLearnedRateDecay and is then forgotten (nullopt: no cap). Never
// below 1 a minute nor above `configured`.
std::optional<double> restored_rate(double learned, std::optional<double> configured, Duration age);

using LearnedKey = std::pair<LearnedScope, std::string>;

// What to write after `saved` (what the store holds) to make it hold `current` (what is
// learned now): a row per rate new or moved by 1% or more, and a forgetting row (nullopt) per
// key no longer learned. Small moves are not written: the recovery of a pacer moves its rate
// every 5 s, and its row would be rewritten as often for nothing.
std::vector<LearnedRate> learned_rate_changes(const std::map<LearnedKey, double>& saved,
                                              const std::map<LearnedKey, double>& current);

}  // namespace callbackd::reconcile
