#include "core/reconcile/attention.h"

namespace callbackd::reconcile {

void Attention::cancel_sleep(const std::string& tenant_id) {
  auto it = sleep_of_.find(tenant_id);
  if (it == sleep_of_.end()) return;
  sleeping_until_.erase(it->second);
  sleep_of_.erase(it);
}

void Attention::wake(const std::string& tenant_id) {
  cancel_sleep(tenant_id);
  awake_.insert(tenant_id);
}

void Attention::sleep(const std::string& tenant_id, std::optional<Instant> until) {
  cancel_sleep(tenant_id);
  awake_.erase(tenant_id);
  if (until) sleep_of_.emplace(tenant_id, sleeping_until_.emplace(*until, tenant_id));
}

void Attention::forget(const std::string& tenant_id) {
  cancel_sleep(tenant_id);
  awake_.erase(tenant_id);
}

std::vector<std::string> Attention::awake_at(Instant now) {
  while (!sleeping_until_.empty() && sleeping_until_.begin()->first <= now) {
    const std::string tenant_id = sleeping_until_.begin()->second;
    wake(tenant_id);
  }
  return {awake_.begin(), awake_.end()};
}

std::optional<Instant> Attention::next_wake() const {
  if (sleeping_until_.empty()) return std::nullopt;
  return sleeping_until_.begin()->first;
}

}  // namespace callbackd::reconcile
