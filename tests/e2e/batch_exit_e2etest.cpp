// `callbackd run --exit-when-idle` as a batch job (issue 13 item 8): exit 0 only when every
// desired row of every tenant in mode apply is in sync; exit 2, with one summary line naming
// what is left, when rows failed or are invalid or a tenant is paused by an error. Tenants
// the operator holds back (mode paused/observe) are not part of the job.
#include <catch2/catch.hpp>

#include <csignal>
#include <sstream>

#include "e2e/e2e_support.h"

using namespace e2e;

namespace {

// The lines of the run's output that start with "callbackd: " (the summary goes to stdout,
// the logs to stderr; the test sees both).
std::vector<std::string> summary_lines(const std::string& output) {
  std::vector<std::string> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("callbackd: ")) lines.push_back(line);
  return lines;
}

void check_run(const callbackd::test::Finished& run, int exit_status, const std::string& summary) {
  INFO(run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0));
  CHECK(run.exit_status == exit_status);
  CHECK(summary_lines(run.output) == std::vector<std::string>{summary});
}

}  // namespace

TEST_CASE("batch: every row in sync exits 0", "[e2e][batch]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 20);
  env.start_sandbox();
  check_run(env.run_until_idle(), 0, "callbackd: idle, every row of every tenant in mode apply is in sync");
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 20}});
}

TEST_CASE("batch: a row WeChat Pay rejected exits 2 and is named", "[e2e][batch]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 20);
  env.start_sandbox("", "  sub_merchants:\n    \"" + sub_merchant(1, 3) + "\": {kind: error, code: PARAM_ERROR}\n");
  check_run(env.run_until_idle(), 2, "callbackd: idle with work left: 1 row failed (acme: 1 PARAM_ERROR)");
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 19}, {"failed", 1}});
}

TEST_CASE("batch: an invalid desired row exits 2 and is named", "[e2e][batch]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 20);
  env.exec("INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES ('" +
           sub_merchant(2, 0) + "', 'acme', 'http://plain.example.com/notify', true)");
  env.start_sandbox();
  check_run(env.run_until_idle(), 2, "callbackd: idle with work left: 1 row invalid (acme: 1 INVALID_DESIRED_ROW)");
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 20}, {"invalid", 1}});
}

TEST_CASE("batch: a tenant paused by an error exits 2 and is named, the others converge", "[e2e][batch]") {
  Environment env;
  env.add_tenant(TenantSpec("good", "1900000001"));
  TenantSpec broken("broken", "1900000002");
  broken.private_key_path = "no_such_key.pem";  // CREDENTIALS_INVALID: the tenant is paused at start
  env.add_tenant(broken);
  env.add_rows("good", 1, 10);
  env.add_rows("broken", 2, 5);
  env.start_sandbox();
  check_run(env.run_until_idle(), 2,
            "callbackd: idle with work left: tenant broken paused (CREDENTIALS_INVALID, 5 rows not in sync)");
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'good' AND state = 'in_sync'") == 10);
}

TEST_CASE("batch: a tenant the operator paused is not part of the job (exit 0, named)", "[e2e][batch]") {
  Environment env;
  env.add_tenant(TenantSpec("good", "1900000001"));
  TenantSpec held("held", "1900000002");
  held.mode = "paused";
  env.add_tenant(held);
  env.add_rows("good", 1, 10);
  env.add_rows("held", 2, 4);
  env.start_sandbox();
  check_run(env.run_until_idle(), 0,
            "callbackd: idle, every row of every tenant in mode apply is in sync; not sent, by the operator's "
            "choice: held (mode paused, 4 rows not in sync)");
  CHECK(env.sandbox_stats()["callers"].count("1900000002") == 0);
}

TEST_CASE("batch: stopped by SIGTERM before it went idle, rows unsent: exits 2 and says so", "[e2e][batch]") {
  Environment env;
  TenantSpec slow("acme");
  slow.rate_per_minute = 60;  // one request a second: 100 rows take far longer than the test waits
  env.add_tenant(slow);
  env.add_rows("acme", 1, 100);
  env.start_sandbox();
  auto command = env.daemon_command();
  command.push_back("--exit-when-idle");
  callbackd::test::ScopedChild daemon(callbackd::test::spawn_process(command));
  REQUIRE(
      wait_until([&] { return env.count("SELECT count(*) FROM callbackd.audit_log") >= 2; }, std::chrono::seconds{30}));
  const int status = daemon.signal_and_wait(SIGTERM, std::chrono::milliseconds{30'000});
  const std::string output = daemon.output();
  INFO(output.substr(output.size() > 4000 ? output.size() - 4000 : 0));
  CHECK(status == 2);
  const auto lines = summary_lines(output);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].starts_with("callbackd: idle with work left: "));
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'") < 100);
}
