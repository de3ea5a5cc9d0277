// The daemon as a member of callbackd_daemon (migrations/0004_roles.sql) converges real sends
// against the sandbox: the grants cover every statement of a run that actually sends, records
// `applied`, takes tenant leases and heartbeats, folds the row counts' changes, and an
// operator's change made as callbackd_operator is picked up by the next run.
#include <catch2/catch.hpp>

#include <chrono>
#include <pqxx/pqxx>

#include "e2e/e2e_support.h"

using namespace e2e;
using callbackd::test::LoginRole;

namespace {

// `run --exit-when-idle` logged in as `conninfo` instead of the superuser.
callbackd::test::Finished run_as(Environment& env, const std::string& conninfo) {
  DaemonConfigOptions options;
  options.database_url = conninfo;
  return env.run_until_idle(std::chrono::seconds{90}, "", options);
}

}  // namespace

TEST_CASE("the daemon converges as a member of callbackd_daemon", "[e2e][roles]") {
  Environment env;
  LoginRole daemon(env.db(), "daemon", "callbackd_daemon");
  LoginRole alice(env.db(), "op", "callbackd_operator");
  env.add_tenant({"tenant1", "1900000001"});
  env.add_tenant({"tenant2", "1900000002"});
  env.add_rows("tenant1", 1, 50);
  env.add_rows("tenant2", 2, 50);
  env.start_sandbox();

  auto run = run_as(env, daemon.conninfo());
  INFO(run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0));
  REQUIRE(run.exit_status == 0);
  CHECK(run.output.find("permission denied") == std::string::npos);
  CHECK(run.output.find("row_counts_fold_failed") == std::string::npos);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 100}});
  // The row counts' bookkeeping (migrations/0014) ran as this role too: only a fold fills the
  // totals.
  CHECK(env.count("SELECT coalesce(sum(n), 0) FROM callbackd.row_state_totals") > 0);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied' AND db_user = '" + daemon.name() +
                  "'") == 100);
  CHECK(env.sandbox_requests().size() == 100);

  // An operator's change, made with the operator's privileges only, is queued and sent.
  {
    pqxx::connection c(alice.conninfo());
    pqxx::work tx(c);
    tx.exec0("UPDATE callbackd.desired_callbacks SET notify_url = notify_url || '/v2' WHERE tenant_id = 'tenant1'");
    tx.commit();
  }
  auto again = run_as(env, daemon.conninfo());
  INFO(again.output.substr(again.output.size() > 4000 ? again.output.size() - 4000 : 0));
  REQUIRE(again.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 100}});
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE applied_notify_url LIKE '%/v2'") == 50);
  CHECK(env.sandbox_requests().size() == 150);
}
