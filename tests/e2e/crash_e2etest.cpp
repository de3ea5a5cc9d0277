// kill -9 in the middle of a run, then a restart: every row converges, and every row recorded
// as applied has its audit row.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <thread>

#include "e2e/e2e_support.h"

using namespace e2e;

TEST_CASE("kill -9 during a run, then a restart: everything converges with its audit", "[e2e][crash]") {
  Environment env;
  TenantSpec t("acme");
  t.rate_per_minute = 3000;  // 50 a second: 1,000 rows take 20 s, the kill lands mid-run
  env.add_tenant(t);
  env.add_rows("acme", 1, 1000);
  env.start_sandbox();
  const std::string config = env.write_daemon_config();
  auto child = callbackd::test::spawn_process({CALLBACKD_BINARY, "--config", config, "run"});
  // Wait until some rows are applied, then kill without warning.
  for (int i = 0; i < 200 && env.count("SELECT count(*) FROM callbackd.audit_log") < 100; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  kill(child.pid, SIGKILL);
  CHECK(callbackd::test::wait_exit_status(child) == 128 + SIGKILL);
  const long long applied_before = env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'");
  CHECK(applied_before > 0);
  CHECK(applied_before < 1000);

  auto run = env.run_until_idle(std::chrono::seconds{120});
  INFO(run.output.substr(run.output.size() > 3000 ? run.output.size() - 3000 : 0));
  REQUIRE(run.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 1000}});
  // Every in_sync row has its applied audit row, and every applied row a 200 from the sandbox.
  check_audit_matches_state_and_sandbox(env);
  // Every request the sandbox answered 200 to is either recorded, or was in flight at the kill
  // (then sent again after the restart, which the idempotent endpoint allows).
  std::map<std::string, int> sent;
  for (const auto& r : env.sandbox_requests()) ++sent[r["sub_merchant"].get<std::string>()];
  CHECK(sent.size() == 1000);
  int twice = 0;
  for (const auto& [m, n] : sent) twice += n > 1;
  CHECK(twice <= 16);  // at most what was in flight or claimed-and-unrecorded at the kill
}

TEST_CASE("SIGTERM drains: requests in flight are recorded and the exit status is 0", "[e2e][crash]") {
  Environment env;
  TenantSpec t("acme");
  t.rate_per_minute = 600;
  env.add_tenant(t);
  env.add_rows("acme", 1, 300);
  env.start_sandbox("", "  random:\n    - {kind: delay, delay_ms: 300, probability: 1.0}\n");
  const std::string config = env.write_daemon_config();
  auto child = callbackd::test::spawn_process({CALLBACKD_BINARY, "--config", config, "run"});
  for (int i = 0; i < 200 && env.count("SELECT count(*) FROM callbackd.audit_log") < 10; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  kill(child.pid, SIGTERM);
  const int status = callbackd::test::wait_exit_status(child);
  INFO(callbackd::test::read_file(child.output_path));
  CHECK(status == 0);
  // Every request the sandbox answered has its audit row: nothing in flight was lost.
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log") == static_cast<long long>(env.sandbox_requests().size()));
  // Unsent claims were given back: nothing is left claimed.
  CHECK(env.count("SELECT count(*) FROM callbackd.pending_work WHERE claim_token IS NOT NULL") == 0);
}

TEST_CASE("SIGHUP with an invalid config logs the refusal and keeps running on the old one", "[e2e][crash]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 10);
  env.start_sandbox();
  const std::string config = env.write_daemon_config();
  const std::string good = callbackd::test::read_file(config);
  auto child = callbackd::test::spawn_process({CALLBACKD_BINARY, "--config", config, "run"});
  for (int i = 0; i < 200 && env.count("SELECT count(*) FROM callbackd.audit_log") < 10; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  REQUIRE(env.count("SELECT count(*) FROM callbackd.audit_log") == 10);

  std::ofstream(config, std::ios::trunc) << good << "reconciler:\n  poll_interval: soon\n";
  kill(child.pid, SIGHUP);
  for (int i = 0; i < 100 && callbackd::test::read_file(child.output_path).find("reload_refused") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  // The daemon is still there and still works on the old config: a change is sent.
  env.exec("UPDATE callbackd.desired_callbacks SET notify_url = notify_url || '/v2' WHERE mchid = '" +
           sub_merchant(1, 0) + "'");
  for (int i = 0; i < 200 && env.count("SELECT count(*) FROM callbackd.audit_log") < 11; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log") == 11);
  kill(child.pid, SIGTERM);
  const int status = callbackd::test::wait_exit_status_for(child, std::chrono::seconds{30});
  const std::string output = callbackd::test::read_file(child.output_path);
  INFO(output);
  CHECK(status == 0);
  CHECK(output.find("reload_refused") != std::string::npos);
  CHECK(output.find("reconciler.poll_interval") != std::string::npos);
}
