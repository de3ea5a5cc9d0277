// `run --exit-when-idle`: the exit status and the one summary line (batch_result.h).
#include <catch2/catch.hpp>

#include "core/reconcile/batch_result.h"

using namespace callbackd;
using namespace callbackd::reconcile;

namespace {
TenantRowsAfterRun tenant(std::string id, std::map<std::string, long long> by_state,
                          std::vector<TenantRowsAfterRun::ErrorCount> by_error = {},
                          TenantMode mode = TenantMode::apply, std::optional<std::string> paused = std::nullopt) {
  return {std::move(id), mode, std::move(paused), std::move(by_state), std::move(by_error)};
}
}  // namespace

TEST_CASE("batch result: exit 0 only when every row of every apply tenant is in sync", "[batch_result]") {
  struct Row {
    const char* situation;
    std::vector<TenantRowsAfterRun> tenants;
    int exit_status;
    std::string summary;
  };
  const std::string done = "callbackd: idle, every row of every tenant in mode apply is in sync";
  const std::vector<Row> rows{
      {"no tenants", {}, 0, done},
      {"all in sync", {tenant("t1", {{"in_sync", 3}}), tenant("t2", {{"in_sync", 1}})}, 0, done},
      {"a tenant without rows", {tenant("t1", {})}, 0, done},
      {"rows failed, by tenant and code",
       {tenant("t1", {{"in_sync", 3}, {"failed", 1}}, {{"failed", "MCH_NOT_EXISTS", 1}}),
        tenant("t2", {{"failed", 3}}, {{"failed", "PARAM_ERROR", 2}, {"failed", "NOT_ENOUGH", 1}})},
       2,
       "callbackd: idle with work left: 4 rows failed (t1: 1 MCH_NOT_EXISTS; t2: 2 PARAM_ERROR, 1 NOT_ENOUGH)"},
      {"rows held by a change budget wait for approval",
       {tenant("t1", {{"in_sync", 100}, {"held", 400}})},
       2,
       "callbackd: idle with work left: 400 rows held for approval (t1: 400)"},
      {"one invalid row",
       {tenant("t1", {{"in_sync", 2}, {"invalid", 1}}, {{"invalid", "INVALID_DESIRED_ROW", 1}})},
       2,
       "callbackd: idle with work left: 1 row invalid (t1: 1 INVALID_DESIRED_ROW)"},
      {"a failed row without a recorded code",
       {tenant("t1", {{"failed", 2}}, {{"failed", "X", 1}})},
       2,
       "callbackd: idle with work left: 2 rows failed (t1: 1 X, 1)"},
      {"a tenant paused by an error",
       {tenant("t1", {{"paused", 5}}, {}, TenantMode::apply, "CREDENTIALS_INVALID"),
        tenant("t2", {{"in_sync", 1}, {"failed", 2}}, {{"failed", "PARAM_ERROR", 2}})},
       2,
       "callbackd: idle with work left: tenant t1 paused (CREDENTIALS_INVALID, 5 rows not in sync), 2 rows failed "
       "(t2: 2 PARAM_ERROR)"},
      {"a paused tenant whose rows were all applied before",
       {tenant("t1", {{"paused", 0}}, {}, TenantMode::apply, "SIGN_ERROR")},
       2,
       "callbackd: idle with work left: tenant t1 paused (SIGN_ERROR, 0 rows not in sync)"},
      {"rows left pending or retrying (another instance holds them)",
       {tenant("t1", {{"pending", 1}, {"retrying", 2}}, {{"retrying", "SYSTEM_ERROR", 2}})},
       2,
       "callbackd: idle with work left: 2 rows retrying (t1: 2 SYSTEM_ERROR), 1 row pending (t1: 1)"},
      {"operator's choice: mode paused or observe is not part of the job",
       {tenant("t1", {{"in_sync", 1}}), tenant("t2", {{"paused", 4}}, {}, TenantMode::paused),
        tenant("t3", {{"pending", 1}}, {}, TenantMode::observe),
        tenant("t4", {{"in_sync", 2}}, {}, TenantMode::paused)},
       0,
       done + "; not sent, by the operator's choice: t2 (mode paused, 4 rows not in sync), t3 (mode observe, 1 row not "
              "in sync)"},
      {"operator's choice and work left",
       {tenant("t1", {{"invalid", 1}}), tenant("t2", {{"paused", 1}}, {}, TenantMode::paused)},
       2,
       "callbackd: idle with work left: 1 row invalid (t1: 1); not sent, by the operator's choice: t2 (mode paused, "
       "1 row not in sync)"},
  };
  for (const auto& row : rows) {
    INFO(row.situation);
    const BatchResult r = judge_batch(row.tenants);
    CHECK(r.exit_status == row.exit_status);
    CHECK(r.summary == row.summary);
    CHECK(r.summary.find('\n') == std::string::npos);
  }
}
