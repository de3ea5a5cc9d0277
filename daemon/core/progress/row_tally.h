// The counts behind `callbackd run`'s progress table, kept from the daemon's own state: the
// rows per tenant and state read ONCE at start (callbackd.sync_status), then every row move
// this process decides (an attempt's outcome, an invalid verdict) applied as it happens. No
// query per refresh. Pure; never throws (beyond allocation).
//
// What it cannot see (rows written or deleted by an operator during the run, another
// instance's work) it absorbs: a move from a state that has no rows left takes the row from
// another unsettled state, or counts it as a row the baseline did not know (desired grows).
// The final table at exit is drawn from the database again, so what stays on screen is exact.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace callbackd::progress {

class RowTally {
 public:
  using Counts = std::map<std::string, long long>;  // state -> rows

  // A tenant's rows as read at start (replaces what was known of it).
  void set_baseline(const std::string& tenant_id, Counts by_state);
  // One row of `tenant_id` went from `from` to `to` (sync_status state names).
  void moved(const std::string& tenant_id, std::string_view from, std::string_view to);

  // The counts of `tenant_id` (empty when it has no rows known).
  const Counts& counts(const std::string& tenant_id) const;
  const std::map<std::string, Counts>& all() const { return tenants_; }

 private:
  std::map<std::string, Counts> tenants_;
};

}  // namespace callbackd::progress
