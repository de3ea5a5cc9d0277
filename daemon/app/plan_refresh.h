// `callbackd plan --refresh`: reads back what WeChat Pay holds for every row in scope (GET
// /v3/marketing/favor/callbacks?mchid=M, signed with the tenant's keys, verified like the
// daemon's) through a ReadPacer at wechatpay.read_rate_per_second, and reports each row whose
// live notify_url differs from the applied one. Nothing is written: the daemon's drift checks
// record drift (docs/sql.md, "Live state"); this is the operator's look now.
#pragma once

#include <cstddef>
#include <ostream>
#include <vector>

#include "core/config.h"
#include "pg/inspect.h"

namespace callbackd::app {

struct RefreshTotals {
  std::size_t read = 0;    // answered (a value, or nothing set)
  std::size_t drift = 0;   // of those, a live value other than the applied one
  std::size_t unread = 0;  // the read failed (or the tenant's keys do not load)
};

// One `drift` line per drifted row and one `unread` line per failed read, to `out` in the rows'
// order; progress to stderr when `show_progress`.
RefreshTotals refresh_live_values(const Config& config, const std::vector<pg::TenantOverview>& tenants,
                                  const std::vector<pg::Inspector::AppliedRow>& rows, std::ostream& out,
                                  bool show_progress);

}  // namespace callbackd::app
