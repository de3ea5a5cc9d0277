// WeChat Pay's clock (update_time) 10 minutes ahead of or behind PostgreSQL's: a change made
// right after an apply is still sent, and an unchanged row is never sent twice. The diff
// compares revisions from a sequence, never update_time with updated_at.
#include <catch2/catch.hpp>

#include <map>

#include "e2e/e2e_support.h"

using namespace e2e;

namespace {

void check_skew(int skew_seconds) {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 20);
  env.start_sandbox("", "  random:\n    - {kind: update_time_skew, skew_seconds: " + std::to_string(skew_seconds) +
                            ", probability: 1.0}\n");
  auto first = env.run_until_idle();
  INFO(first.output);
  REQUIRE(first.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 20}});
  // The skew took effect: WeChat Pay's update_time is 10 minutes off the database's clock.
  const std::string off = skew_seconds > 0 ? "s.update_time::timestamptz > now() + interval '5 minutes'"
                                           : "s.update_time::timestamptz < now() - interval '5 minutes'";
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status s WHERE " + off) == 20);

  // Right after the apply: 5 rows get a new URL and 5 are touched without a change.
  env.exec("UPDATE callbackd.desired_callbacks SET notify_url = notify_url || '?v=2' WHERE mchid <= '" +
           sub_merchant(1, 4) + "'");
  env.exec("UPDATE callbackd.desired_callbacks SET notify_url = notify_url WHERE mchid BETWEEN '" + sub_merchant(1, 5) +
           "' AND '" + sub_merchant(1, 9) + "'");
  auto second = env.run_until_idle();
  REQUIRE(second.exit_status == 0);
  CHECK(env.sandbox_requests().size() == 30);
  CHECK(env.count(
            "SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync' AND applied_notify_url LIKE '%?v=2'") ==
        5);

  // Nothing changed since: a third run sends nothing, whatever the clocks say.
  auto third = env.run_until_idle();
  REQUIRE(third.exit_status == 0);
  CHECK(env.sandbox_requests().size() == 30);
  std::map<std::string, int> sent;
  for (const auto& r : env.sandbox_requests()) ++sent[r["sub_merchant"].get<std::string>()];
  for (int i = 0; i < 20; ++i) CHECK(sent[sub_merchant(1, i)] == (i < 10 ? 2 : 1));
}

}  // namespace

TEST_CASE("WeChat Pay's clock 10 minutes ahead: no missed change, no re-send", "[e2e][skew]") { check_skew(600); }
TEST_CASE("WeChat Pay's clock 10 minutes behind: no missed change, no re-send", "[e2e][skew]") { check_skew(-600); }
