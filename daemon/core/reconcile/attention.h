// Which tenants the run loop looks at on a turn. Pure bookkeeping: `now` is a parameter;
// never throws (beyond allocation).
//
// With 10,000 tenants and nothing to send, looking at every tenant on every turn (is a claim
// due? when could one be?) costs more than the turn's real work. So a tenant is either
//  - awake: the loop looks at it on every turn (it may claim, has rows buffered or in flight,
//    is paused and waiting for its probe, ...), or
//  - asleep until an instant (its earliest row due later) or until an event wakes it (a
//    NOTIFY, a poll, a lease acquired, the tenants re-read, a hold ending).
// The run loop puts a tenant to sleep only when the claim gate says nothing but that instant
// could change its answer (engine/reconciler.cpp); whoever changes a tenant's inputs wakes it.
// A turn's work is then O(awake tenants + tenants whose sleep ended), and the loop's next
// wake-up is the earliest awake tenant's or the earliest end of a sleep.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/reconcile/time.h"

namespace callbackd::reconcile {

class Attention {
 public:
  // Looked at from the next turn on (also for a tenant never seen before).
  void wake(const std::string& tenant_id);
  // Not looked at until `until` (nullopt: until woken).
  void sleep(const std::string& tenant_id, std::optional<Instant> until);
  // A tenant removed: never looked at again (until woken).
  void forget(const std::string& tenant_id);

  // Wakes every tenant whose sleep ends at or before `now`; returns the tenants awake, in id
  // order (a copy: the caller may wake and sleep tenants while it walks them).
  std::vector<std::string> awake_at(Instant now);
  const std::set<std::string>& awake() const { return awake_; }
  bool is_awake(const std::string& tenant_id) const { return awake_.count(tenant_id) > 0; }
  std::size_t awake_count() const { return awake_.size(); }
  // The earliest end of a sleep (nullopt: nobody sleeps until an instant).
  std::optional<Instant> next_wake() const;

 private:
  void cancel_sleep(const std::string& tenant_id);

  std::set<std::string> awake_;
  std::multimap<Instant, std::string> sleeping_until_;
  std::map<std::string, std::multimap<Instant, std::string>::iterator> sleep_of_;
};

}  // namespace callbackd::reconcile
