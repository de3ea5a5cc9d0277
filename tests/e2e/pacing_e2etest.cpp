// Pacing against the sandbox's strict sliding windows (any 1 s, any 60 s per caller).
#include <catch2/catch.hpp>

#include <map>

#include "e2e/e2e_support.h"

using namespace e2e;

TEST_CASE("at the configured rate the strict windows never answer 429", "[e2e][pacing]") {
  Environment env;
  TenantSpec t("acme");
  t.rate_per_minute = 600;  // 10 a second; the 1 s window allows 15
  env.add_tenant(t);
  env.add_rows("acme", 1, 150);
  env.start_sandbox("  set_per_minute: 600\n");
  auto run = env.run_until_idle(std::chrono::seconds{90});
  INFO(run.output.substr(run.output.size() > 3000 ? run.output.size() - 3000 : 0));
  REQUIRE(run.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 150}});
  const auto stats = env.sandbox_stats();
  INFO(stats.dump());
  CHECK(stats["callers"]["1900000001"]["outcomes"].count("429") == 0);
  CHECK(stats["callers"]["1900000001"]["max_in_1s"].get<int>() <= 15);
  CHECK(stats["callers"]["1900000001"]["max_in_60s"].get<int>() <= 600);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'rate_limited'") == 0);
}

TEST_CASE("when the server's limit is lower than configured, the daemon adapts and converges", "[e2e][pacing]") {
  Environment env;
  // Configured 20 a second; the sandbox allows 5 (1 s window 7).
  check_adapts_to_lower_server_limit(env, 1200, 300, 120, std::chrono::seconds{120});
}
