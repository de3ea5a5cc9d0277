#include "core/reconcile/held_changes.h"

#include <algorithm>
#include <map>

#include "core/desired/notify_host.h"

namespace callbackd::reconcile {
namespace {

std::string host_of(const std::optional<std::string>& url, const char* when_absent) {
  if (!url) return when_absent;
  return desired::notify_url_host(*url).value_or("(no host)");
}

std::string side(const std::map<std::string, long long>& rows_by_host, std::size_t max_hosts) {
  std::vector<std::pair<std::string, long long>> sorted(rows_by_host.begin(), rows_by_host.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  long long rest_rows = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (i >= max_hosts) {
      rest_rows += sorted[i].second;
      continue;
    }
    if (i) out += ", ";
    out += sorted[i].first + " (" + with_thousands(sorted[i].second) + ")";
  }
  if (sorted.size() > max_hosts)
    out += ", " + std::to_string(sorted.size() - max_hosts) + " more (" + with_thousands(rest_rows) + ")";
  return out;
}

}  // namespace

std::string with_thousands(long long n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string held_hosts_summary(const std::vector<HeldMove>& moves, std::size_t max_hosts) {
  std::map<std::string, long long> before;
  std::map<std::string, long long> after;
  for (const auto& m : moves) {
    before[host_of(m.applied_notify_url, "(nothing applied)")] += m.rows;
    after[host_of(m.desired_notify_url, "(no host)")] += m.rows;
  }
  if (before.empty()) return "";
  return side(before, max_hosts) + " \u2192 " + side(after, max_hosts);
}

}  // namespace callbackd::reconcile
