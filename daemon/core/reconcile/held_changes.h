// What a tenant's held changes would do, in one line a person can judge at a glance
// (`plan`, `status`, the daemon's warning when a tenant starts holding; issue 18):
//   400 held: hooks.a.example (400) → hooks.b.example (400)
// Pure; never throws.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace callbackd::reconcile {

// Held rows that move from one notify_url to another (several rows may share a pair).
struct HeldMove {
  std::optional<std::string> applied_notify_url;  // nullopt: nothing applied yet
  std::optional<std::string> desired_notify_url;  // desired_callbacks.notify_url (NULL: nullopt)
  long long rows = 0;
};

// "1,200"
std::string with_thousands(long long n);

// "hooks.a.example (900), hooks.c.example (300) → hooks.b.example (1,200)": the hosts before
// (what is applied) and after (what is desired), canonical (desired/notify_host.h), most rows
// first, at most `max_hosts` a side and then "2 more (40)". A URL without a readable host
// shows as "(no host)", a row never applied as "(nothing applied)".
std::string held_hosts_summary(const std::vector<HeldMove>& moves, std::size_t max_hosts = 3);

}  // namespace callbackd::reconcile
