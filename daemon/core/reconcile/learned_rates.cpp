#include "core/reconcile/learned_rates.h"

#include <algorithm>
#include <cmath>

namespace callbackd::reconcile {

std::string_view learned_scope_name(LearnedScope scope) {
  return scope == LearnedScope::tenant ? "tenant" : "source_address";
}

std::optional<LearnedScope> learned_scope_from(std::string_view name) {
  if (name == "tenant") return LearnedScope::tenant;
  if (name == "source_address") return LearnedScope::source_address;
  return std::nullopt;
}

std::optional<double> restored_rate(double learned, std::optional<double> configured, Duration age) {
  const double progress = std::clamp(
      std::chrono::duration<double>(std::max(age, Duration::zero())) / std::chrono::duration<double>(kLearnedRateDecay),
      0.0, 1.0);
  if (!configured) {
    if (progress >= 1) return std::nullopt;
    return std::max(1.0, learned * (1 + progress));
  }
  const double from = std::clamp(learned, std::min(1.0, *configured), *configured);
  return from + (*configured - from) * progress;
}

std::vector<LearnedRate> learned_rate_changes(const std::map<LearnedKey, double>& saved,
                                              const std::map<LearnedKey, double>& current) {
  std::vector<LearnedRate> changes;
  for (const auto& [key, rate] : current) {
    const auto it = saved.find(key);
    if (it != saved.end() && std::abs(it->second - rate) < 0.01 * std::max(it->second, rate)) continue;
    changes.push_back({key.first, key.second, rate, {}});
  }
  for (const auto& [key, rate] : saved)
    if (!current.count(key)) changes.push_back({key.first, key.second, std::nullopt, {}});
  return changes;
}

}  // namespace callbackd::reconcile
