// The reconciler's core promise: every desired row reaches WeChat Pay exactly once, and what
// the database says afterwards matches what the sandbox holds.
#include <catch2/catch.hpp>

#include <map>
#include <pqxx/pqxx>

#include "e2e/e2e_support.h"

using namespace e2e;

TEST_CASE("3 tenants x 1,000 sub-merchants converge, each sent exactly once", "[e2e][converge]") {
  Environment env;
  for (int i = 1; i <= 3; ++i) {
    env.add_tenant({"tenant" + std::to_string(i), "190000000" + std::to_string(i)});
    env.add_rows("tenant" + std::to_string(i), i, 1000);
  }
  env.start_sandbox();
  auto run = env.run_until_idle();
  INFO(run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0));
  REQUIRE(run.exit_status == 0);

  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 3000}});
  // Each sub-merchant reached the sandbox once, from its own tenant's merchant.
  std::map<std::string, int> sent;
  for (const auto& r : env.sandbox_requests()) {
    CHECK(r["status"] == 200);
    CHECK(r["signature_verified"] == true);
    ++sent[r["sub_merchant"].get<std::string>()];
  }
  CHECK(sent.size() == 3000);
  for (const auto& [mchid, n] : sent) {
    INFO(mchid);
    CHECK(n == 1);
  }
  // Every applied row has its audit row, with WeChat Pay's update_time and Request-ID.
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied'") == 3000);
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status s JOIN callbackd.audit_log a USING (mchid) "
                  "WHERE a.outcome = 'applied' AND s.update_time = a.update_time AND a.request_id IS NOT NULL "
                  "AND a.http_status = 200 AND s.applied_notify_url = a.notify_url") == 3000);
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE update_time !~ "
                  "'^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\+08:00$'") == 0);
  CHECK(env.count("SELECT count(*) FROM callbackd.pending_work") == 0);
  // The tenant's caller is the tenant's merchant id.
  const auto stats = env.sandbox_stats();
  for (int i = 1; i <= 3; ++i) CHECK(stats["callers"]["190000000" + std::to_string(i)]["requests"] == 1000);
  CHECK(stats["concurrent_same_sub_merchant"] == 0);

  // A second run finds nothing to do and sends nothing.
  auto again = env.run_until_idle();
  CHECK(again.exit_status == 0);
  CHECK(env.sandbox_requests().size() == 3000);
}
