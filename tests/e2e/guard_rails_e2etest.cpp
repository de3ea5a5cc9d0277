// Guard rails for mass changes (issue 18), end to end: the real daemon, PostgreSQL and the
// sandbox. A change budget lets exactly its share of a mass UPDATE reach WeChat Pay and holds
// the rest until an operator approves; allowed_notify_hosts keeps a row pointing elsewhere from
// ever being sent until the list allows it.
#include <catch2/catch.hpp>

#include <map>
#include <pqxx/pqxx>

#include "e2e/e2e_support.h"

using namespace e2e;

namespace {

// Requests the sandbox answered 200 (whose record does not carry the URL: the audit log says
// which URL each applied request set, and check_audit_matches_state_and_sandbox ties the two).
long long answered_200(Environment& env) {
  long long n = 0;
  for (const auto& r : env.sandbox_requests()) n += r["status"] == 200;
  return n;
}

callbackd::test::Finished cli(Environment& env, const std::vector<std::string>& args,
                              const std::map<std::string, std::string>& environment = {}) {
  std::vector<std::string> command = {CALLBACKD_BINARY, "--config", env.write_daemon_config()};
  command.insert(command.end(), args.begin(), args.end());
  return callbackd::test::run_process(command, environment);
}

}  // namespace

TEST_CASE("a change budget of 100 sends 100 of a 500-row UPDATE and holds 400 until approved", "[e2e][guard_rails]") {
  Environment env;
  env.add_tenant({"acme"});
  env.exec("UPDATE callbackd.tenants SET max_changes_per_hour = 100 WHERE tenant_id = 'acme'");
  env.add_rows("acme", 1, 500);
  env.start_sandbox();
  // First applies of new sub-merchants are not changes: all 500 go.
  auto first = env.run_until_idle();
  INFO(output_tail(first.output));
  REQUIRE(first.exit_status == 0);
  REQUIRE(env.states() == std::map<std::string, long long>{{"in_sync", 500}});

  // One UPDATE moves all 500 to another host.
  env.exec(
      "UPDATE callbackd.desired_callbacks SET notify_url = "
      "replace(notify_url, 'https://notify.example.com/', 'https://hooks.b.example/') WHERE tenant_id = 'acme'");
  auto held_run = env.run_until_idle();
  INFO(output_tail(held_run.output));
  CHECK(held_run.exit_status == 2);  // idle with work left: the held rows (cli.md)
  CHECK(contains(held_run.output, "400 rows held for approval (acme: 400)"));
  CHECK(answered_200(env) == 500 + 100);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied' AND notify_url LIKE "
                  "'https://hooks.b.example/%'") == 100);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 500 - 400}, {"held", 400}});
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'held' AND applied_notify_url LIKE "
                  "'https://notify.example.com/%' AND last_error_code = 'CHANGE_BUDGET_EXCEEDED' AND "
                  "last_error_message LIKE 'change budget of tenant acme reached: 100 of max_changes_per_hour 100%'") ==
        400);
  // One warning for the tenant, not one per row; one audit event.
  std::size_t warnings = 0;
  for (std::size_t at = held_run.output.find("changes_held"); at != std::string::npos;
       at = held_run.output.find("changes_held", at + 1))
    ++warnings;
  CHECK(warnings == 1);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'changes_held'") == 1);

  // plan and status show the held rows with the hosts summary a person can judge at a glance.
  for (const char* command : {"plan", "status"}) {
    auto shown = cli(env, {command});
    INFO(command << ": " << shown.output.substr(0, 3000));
    CHECK(shown.exit_status == 0);
    CHECK(contains(shown.output,
                   "held by the change budget: 400 row(s): notify.example.com (400) \u2192 hooks.b.example (400)"));
    CHECK(contains(shown.output, "callbackd approve acme"));
  }

  // A running daemon counts them for its metrics and sends none of them.
  {
    DaemonConfigOptions options;
    const int metrics_port = free_port();
    options.metrics_listen = "127.0.0.1:" + std::to_string(metrics_port);
    const auto daemon = env.start_daemon("", options);
    callbackd::test::Finished metrics;
    CHECK(wait_until(
        [&] {
          metrics = check_metrics(metrics_port, {"callbackd_held_rows:tenant=acme:400"});
          return metrics.exit_status == 0;
        },
        std::chrono::seconds{30}));
    INFO(metrics.output);
    CHECK(env.stop_daemon(daemon) == 0);
    CHECK(answered_200(env) == 500 + 100);
  }

  // The daemon's login may not approve; an operator's may, and is recorded with that login.
  const callbackd::test::LoginRole daemon_login(env.db(), "daemon", "callbackd_daemon");
  const auto refused = cli(env, {"approve", "acme"}, {{"CALLBACKD_DATABASE_URL", daemon_login.conninfo()}});
  INFO(refused.output);
  CHECK(refused.exit_status == 1);
  CHECK(contains(refused.output, "only members of callbackd_operator may approve"));
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'held'") == 400);
  const callbackd::test::LoginRole operator_login(env.db(), "approver", "callbackd_operator");
  const std::string approver = operator_login.name();
  const auto approved = cli(env, {"approve", "acme"}, {{"CALLBACKD_DATABASE_URL", operator_login.conninfo()}});
  INFO(approved.output);
  CHECK(approved.exit_status == 0);
  CHECK(contains(approved.output, "400 held row(s) released"));

  auto after = env.run_until_idle();
  INFO(output_tail(after.output));
  CHECK(after.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 500}});
  CHECK(answered_200(env) == 500 + 500);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied' AND notify_url LIKE "
                  "'https://hooks.b.example/%'") == 500);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'changes_approved' AND db_user = '" +
                  approver + "' AND error_message LIKE '400 held changes released by " + approver + "%'") == 1);
  CHECK(env.text("SELECT approved_by || ' ' || rows_released FROM callbackd.change_approvals") == approver + " 400");
  check_audit_matches_state_and_sandbox(env);
}

TEST_CASE("allowed hosts: a row pointing elsewhere is invalid and never sent, widening the list sends it",
          "[e2e][guard_rails]") {
  Environment env;
  env.add_tenant({"acme"});
  env.exec("UPDATE callbackd.tenants SET allowed_notify_hosts = '{hooks.example.com}' WHERE tenant_id = 'acme'");
  env.exec(
      "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES "
      "('1900000101', 'acme', 'https://HOOKS.example.com./cb/1', true), "
      "('1900000102', 'acme', 'https://elsewhere.example.net/cb/2', true)");
  env.start_sandbox();
  auto first = env.run_until_idle();
  INFO(output_tail(first.output));
  CHECK(first.exit_status == 2);  // the invalid row is work left
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 1}, {"invalid", 1}});
  CHECK(env.text("SELECT last_error_code || ': ' || last_error_message FROM callbackd.sync_status WHERE mchid = "
                 "'1900000102'") ==
        "NOTIFY_HOST_NOT_ALLOWED: notify_url host \"elsewhere.example.net\" is not in tenants.allowed_notify_hosts "
        "{hooks.example.com}; add it to the list or correct the URL");
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE mchid = '1900000102' AND outcome = 'invalid' "
                  "AND error_code = 'NOTIFY_HOST_NOT_ALLOWED' AND http_status IS NULL") == 1);
  for (const auto& r : env.sandbox_requests()) CHECK(r["sub_merchant"] != "1900000102");

  // Run again: nothing is re-sent, nothing re-audited.
  auto again = env.run_until_idle();
  CHECK(again.exit_status == 2);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE mchid = '1900000102'") == 1);

  // Widening the list sends it; narrowing it makes the other row invalid, its applied value kept.
  env.exec("UPDATE callbackd.tenants SET allowed_notify_hosts = '{*.example.net}' WHERE tenant_id = 'acme'");
  auto widened = env.run_until_idle();
  INFO(output_tail(widened.output));
  CHECK(widened.exit_status == 2);
  CHECK(env.text("SELECT state || ' ' || applied_notify_url FROM callbackd.sync_status WHERE mchid = '1900000102'") ==
        "in_sync https://elsewhere.example.net/cb/2");
  CHECK(env.text("SELECT state || ' ' || applied_notify_url || ' ' || last_error_code FROM callbackd.sync_status "
                 "WHERE mchid = '1900000101'") == "invalid https://HOOKS.example.com./cb/1 NOTIFY_HOST_NOT_ALLOWED");
  long long to_102 = 0, to_101 = 0;
  for (const auto& r : env.sandbox_requests()) {
    to_102 += r["sub_merchant"] == "1900000102";
    to_101 += r["sub_merchant"] == "1900000101";
  }
  CHECK(to_102 == 1);
  CHECK(to_101 == 1);
  check_audit_matches_state_and_sandbox(env);
}
