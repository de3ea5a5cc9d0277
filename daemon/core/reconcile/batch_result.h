// `callbackd run --exit-when-idle`: whether the job is done, once the daemon went idle. Pure;
// never throws (beyond allocation).
//
// The job is every desired row of every tenant in mode `apply`. It is done (exit 0) when all
// of them are in sync. Otherwise (exit 2) one summary line names what is left: tenants paused
// by an error (their rows wait for the fix), rows failed (by tenant and error code), invalid,
// held by the change budget (waiting for `callbackd approve`), and any still pending or retrying (e.g. claimed by
// another instance).
//
// Tenants the OPERATOR holds back — mode `paused` or `observe` — are not part of the job: the
// operator said "do not send", so their rows do not make the run fail; the summary mentions
// them when they have rows not in sync, so that nobody mistakes "done" for "all in sync".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tenant.h"

namespace callbackd::reconcile {

// One tenant's rows after the run, as callbackd.sync_status counts them (`callbackd status`).
struct TenantRowsAfterRun {
  std::string tenant_id;  // printable already (the caller escapes what came from SQL)
  TenantMode mode = TenantMode::apply;
  std::optional<std::string> paused_by_error;  // the pause's error code
  std::map<std::string, long long> by_state;   // in_sync, pending, held, retrying, failed, invalid, paused
  struct ErrorCount {
    std::string state;       // retrying, failed or invalid
    std::string error_code;  // printable already
    long long rows = 0;
  };
  std::vector<ErrorCount> by_error;  // most frequent first
};

inline constexpr int kExitWorkLeft = 2;

struct BatchResult {
  int exit_status = 0;  // 0 or kExitWorkLeft
  std::string summary;  // one line, no newline
};

BatchResult judge_batch(const std::vector<TenantRowsAfterRun>& tenants);

}  // namespace callbackd::reconcile
