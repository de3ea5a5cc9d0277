// A rehearsal never reaches production (issue 13, item 4). Configs as people write them: the
// sandbox's address as base_url and NO backup_url line. Before the fix the backup defaulted to
// https://api2.wechatpay.cn whatever base_url was, so the first attempt with the sandbox down
// failed over to production (here, with no network, it shows as "resolving api2.wechatpay.cn").
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "e2e/e2e_support.h"

using namespace e2e;
using namespace std::chrono_literals;
using callbackd::test::read_file;

TEST_CASE("a rehearsal config without backup_url, its sandbox down: nothing but the sandbox is tried",
          "[e2e][rehearsal]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 5);
  env.start_sandbox();
  env.stop_sandbox();  // down before the daemon starts: its port now refuses connections
  DaemonConfigOptions options;
  options.backup_url = std::nullopt;  // the line forgotten
  const auto daemon =
      env.start_daemon("reconciler:\n  retry_initial_backoff: 200ms\n  retry_max_backoff: 1s\n", options);

  // Attempts are made and recorded (the hold probes on), each a transport failure.
  const std::string failures = "SELECT count(*) FROM callbackd.audit_log WHERE error_code = 'NETWORK_ERROR'";
  const bool attempted = wait_until([&] { return env.count(failures) >= 2; }, 30s);
  const int status = env.stop_daemon(daemon);
  const std::string output = read_file(daemon.output_path);
  INFO(output_tail(output));
  REQUIRE(attempted);
  CHECK(status == 0);

  // Every failure is about the sandbox's address ("connect: connecting to 127.0.0.1: ..."); none
  // names another host.
  const std::string elsewhere =
      "SELECT count(*) FROM callbackd.audit_log WHERE error_code = 'NETWORK_ERROR' AND "
      "position('127.0.0.1' in coalesce(error_message, '')) = 0";
  INFO("error messages: " << env.text("SELECT string_agg(DISTINCT error_message, ' | ') FROM callbackd.audit_log"));
  CHECK(env.count(elsewhere) == 0);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE error_message ILIKE '%wechatpay.cn%' "
                  "OR error_message ILIKE '%weixin.qq.com%'") == 0);
  // The daemon's own account says the same: no production host anywhere in its log.
  CHECK_FALSE(contains(output, "wechatpay.cn"));
  CHECK_FALSE(contains(output, "weixin.qq.com"));
  CHECK(contains(output, "event=wechatpay_unreachable"));
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'") == 0);
}

TEST_CASE("a rehearsal config with a production backup_url: refused at start-up and on SIGHUP, naming both keys",
          "[e2e][rehearsal]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 5);
  env.start_sandbox();
  DaemonConfigOptions production_backup;
  production_backup.backup_url = "https://api2.wechatpay.cn";

  // Start-up: exit 78 (EX_CONFIG) at once, nothing claimed, nothing sent.
  {
    auto run = callbackd::test::run_process_for(env.daemon_command("", production_backup), 30s);
    INFO(run.output);
    CHECK(run.exit_status == 78);
    CHECK(contains(run.output, "wechatpay.backup_url: is WeChat Pay's production host (https://api2.wechatpay.cn)"));
    CHECK(contains(run.output, "wechatpay.base_url (https://127.0.0.1:" + std::to_string(env.sandbox_port()) + ")"));
    CHECK(contains(run.output, "set wechatpay.backup_url: \"\""));
    CHECK(env.count("SELECT count(*) FROM callbackd.audit_log") == 0);
    CHECK(env.count("SELECT count(*) FROM callbackd.tenant_leases") == 0);
    CHECK(env.sandbox_requests().empty());
  }
  // SIGHUP: the same rule. The running daemon logs the refusal and keeps its config (no backup).
  const auto daemon = env.start_daemon();
  REQUIRE(wait_until(
      [&] { return env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied'") == 5; }, 30s));
  const std::string config = env.write_daemon_config("", production_backup);
  REQUIRE(contains(read_file(config), "backup_url: \"https://api2.wechatpay.cn\""));
  kill(daemon.pid, SIGHUP);
  const bool refused = wait_until([&] { return contains(read_file(daemon.output_path), "event=reload_refused"); }, 10s);
  // Still working on the old config: a change is sent to the sandbox.
  env.exec("UPDATE callbackd.desired_callbacks SET notify_url = notify_url || '/v2' WHERE mchid = '" +
           sub_merchant(1, 0) + "'");
  const bool applied = wait_until(
      [&] { return env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied'") == 6; }, 30s);
  const int status = env.stop_daemon(daemon);
  const std::string output = read_file(daemon.output_path);
  INFO(output_tail(output));
  CHECK(refused);
  CHECK(applied);
  CHECK(status == 0);
  CHECK(contains(output, "wechatpay.backup_url: is WeChat Pay's production host"));
  CHECK_FALSE(contains(output, "event=reloaded"));
}
