// Live state (issue 15): the daemon reads back what WeChat Pay holds (GET
// /v3/marketing/favor/callbacks?mchid=M) to adopt settings already right and to find and repair
// (or report) values changed out of band. The sandbox's POST /sandbox/set plays "out of band".
#include <catch2/catch.hpp>

#include <csignal>

#include <map>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "e2e/e2e_support.h"

using namespace e2e;

namespace {

std::string url_of(int block, int i) {
  return "https://notify.example.com/" + std::to_string(block) + "/" + std::to_string(i);
}

}  // namespace

TEST_CASE("adoption: 900 of 1,000 rows already set live are adopted with 100 POSTs and 1,000 reads", "[e2e][live]") {
  Environment env;
  TenantSpec t("acme");
  t.rate_per_minute = 60'000;
  env.add_tenant(t);
  env.add_rows("acme", 1, 1000);
  // Reads are limited by the sandbox at exactly the daemon's read rate: the pacer must keep under it.
  env.start_sandbox("  set_per_minute: 60000\n  get_per_second: 100\n");
  std::map<std::string, std::string> live;
  for (int i = 0; i < 900; ++i) live[sub_merchant(1, i)] = url_of(1, i);
  env.set_live_values(live);

  DaemonConfigOptions options;
  options.read_rate_per_second = 100;
  auto run = env.run_until_idle(std::chrono::seconds{120}, "", options);
  INFO(output_tail(run.output));
  REQUIRE(run.exit_status == 0);

  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 1000}});
  // 100 POSTs: exactly the rows not set live, each once.
  std::set<std::string> posted;
  for (const auto& r : env.sandbox_requests()) {
    CHECK(r["method"] == "POST");
    CHECK(r["status"] == 200);
    posted.insert(r["sub_merchant"].get<std::string>());
  }
  CHECK(env.sandbox_requests().size() == 100);
  CHECK(posted.size() == 100);
  CHECK(posted.count(sub_merchant(1, 900)) == 1);
  CHECK(posted.count(sub_merchant(1, 0)) == 0);
  // 1,000 reads, one per row: 900 answered with the value, 100 "nothing set".
  const auto reads = env.sandbox_reads();
  CHECK(reads.size() == 1000);
  std::map<std::string, int> read_status;
  std::map<std::string, std::string> read_request_ids;
  for (const auto& r : reads) {
    ++read_status[std::to_string(r["status"].get<int>())];
    read_request_ids[r["request_id"].get<std::string>()] = r["sub_merchant"].get<std::string>();
  }
  CHECK(read_status == std::map<std::string, int>{{"200", 900}, {"404", 100}});
  // The 900 audited `adopted`, each with the Request-ID of the read of its own row.
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'adopted'") == 900);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied'") == 100);
  pqxx::connection c(env.db().conninfo());
  pqxx::read_transaction tx(c);
  int matched = 0;
  for (const auto& row : tx.exec("SELECT mchid, request_id FROM callbackd.audit_log WHERE outcome = 'adopted'")) {
    const auto it = read_request_ids.find(row[1].as<std::string>(""));
    if (it != read_request_ids.end() && it->second == row[0].as<std::string>()) ++matched;
  }
  CHECK(matched == 900);
  // Adopted rows show what was read, and when; sync_status.applied_notify_url is the desired URL.
  CHECK(tx.exec1("SELECT count(*) FROM callbackd.sync_status WHERE live_notify_url = desired_notify_url "
                 "AND live_read_at IS NOT NULL AND applied_notify_url = desired_notify_url")[0]
            .as<long long>() == 900);
  // Reads never exceeded the read rate, and no read was refused for it; the set calls' pacing is
  // the tenant's as before.
  const auto stats = env.sandbox_stats();
  INFO(stats.dump());
  const auto& caller = stats["callers"]["1900000001"];
  CHECK(caller["reads"] == 1000);
  CHECK(caller["reads_max_in_1s"].get<int>() <= 100);
  CHECK(caller["read_outcomes"].count("429 FREQUENCY_LIMIT_EXCEED") == 0);
  CHECK(caller["requests"] == 100);
  CHECK(caller["max_in_1s"].get<int>() <= 1500);
}

namespace {

using namespace std::chrono_literals;

constexpr auto kInterval = 10s;  // reconciler.drift_check_interval, shortened
const std::string kDriftConfig = "reconciler:\n  drift_check_interval: 10s\n";

long long audited(Environment& env, const std::string& outcome) {
  return env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = '" + outcome + "'");
}

// 50 rows of a tenant with `drift_policy`, and the sandbox.
void prepare(Environment& env, const std::string& drift_policy) {
  TenantSpec t("acme");
  t.drift_policy = drift_policy;
  env.add_tenant(t);
  env.add_rows("acme", 1, 50);
  env.start_sandbox();
}

// The 50 rows applied by the running daemon, then 10 of them changed out of band.
std::map<std::string, std::string> converge_then_drift(Environment& env) {
  REQUIRE(wait_until([&] { return env.states() == std::map<std::string, long long>{{"in_sync", 50}}; }, 30s));
  REQUIRE(env.sandbox_requests().size() == 50);
  std::map<std::string, std::string> changed;
  for (int i = 0; i < 10; ++i) changed[sub_merchant(1, i)] = "https://elsewhere.example.net/" + std::to_string(i);
  env.set_live_values(changed);
  return changed;
}

std::set<std::string> mchids(Environment& env, const std::string& sql) {
  std::set<std::string> out;
  pqxx::connection c(env.db().conninfo());
  pqxx::read_transaction tx(c);
  for (const auto& row : tx.exec(sql)) out.insert(row[0].as<std::string>());
  return out;
}

std::set<std::string> keys(const std::map<std::string, std::string>& m) {
  std::set<std::string> out;
  for (const auto& [k, v] : m) out.insert(k);
  return out;
}

}  // namespace

TEST_CASE("drift: 10 live values changed out of band are detected within one interval and repaired with 10 POSTs",
          "[e2e][live]") {
  Environment env;
  prepare(env, "repair");
  callbackd::test::ScopedChild daemon(env.start_daemon(kDriftConfig));
  const auto changed = converge_then_drift(env);
  // Every row is checked once per interval at its own phase: within one interval (plus a claim's
  // retry of 1 s and a record batch) all 10 are found.
  REQUIRE(wait_until([&] { return audited(env, "drift_detected") == 10; }, kInterval + 3s));
  CHECK(mchids(env, "SELECT mchid FROM callbackd.audit_log WHERE outcome = 'drift_detected'") == keys(changed));
  // The audit row carries the live value found.
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'drift_detected' "
                  "AND notify_url LIKE 'https://elsewhere.example.net/%' AND request_id IS NOT NULL") == 10);
  // Repaired through the set pacer: exactly 10 POSTs more, one per drifted row, and every row in sync.
  REQUIRE(wait_until(
      [&] {
        return env.sandbox_requests().size() >= 60 && env.states() == std::map<std::string, long long>{{"in_sync", 50}};
      },
      20s));
  // Another whole interval: every row read back again, no drift left, nothing more sent.
  std::this_thread::sleep_for(kInterval + 2s);
  INFO(output_tail(daemon.output()));
  CHECK(env.sandbox_requests().size() == 60);
  std::map<std::string, int> repairs;
  for (const auto& r : env.sandbox_requests()) ++repairs[r["sub_merchant"].get<std::string>()];
  for (const auto& [mchid, url] : changed) CHECK(repairs[mchid] == 2);
  CHECK(audited(env, "drift_detected") == 10);
  CHECK(audited(env, "applied") == 60);
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE live_notify_url = desired_notify_url") == 50);
  CHECK(daemon.signal_and_wait(SIGTERM, 30s) == 0);
}

TEST_CASE("drift with drift_policy report: 10 rows drifted and no POST, plan --refresh lists them and exits 2",
          "[e2e][live]") {
  Environment env;
  prepare(env, "report");
  callbackd::test::ScopedChild daemon(env.start_daemon(kDriftConfig));
  const auto changed = converge_then_drift(env);
  REQUIRE(wait_until(
      [&] {
        return env.states() == std::map<std::string, long long>{{"in_sync", 40}, {"drifted", 10}};
      },
      kInterval + 3s));
  CHECK(mchids(env, "SELECT mchid FROM callbackd.sync_status WHERE state = 'drifted'") == keys(changed));
  CHECK(env.count(
            "SELECT count(*) FROM callbackd.sync_status WHERE state = 'drifted' "
            "AND live_notify_url LIKE 'https://elsewhere.example.net/%' AND last_error_code = 'DRIFT_DETECTED'") == 10);
  std::this_thread::sleep_for(kInterval + 2s);
  INFO(output_tail(daemon.output()));
  CHECK(env.sandbox_requests().size() == 50);  // no POST
  CHECK(audited(env, "drift_detected") == 10);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 40}, {"drifted", 10}});

  // `plan --refresh` reads every applied row back and lists exactly those 10; drift makes
  // --detailed-exitcode exit 2. It writes nothing.
  const auto reads_before = env.sandbox_reads().size();
  const auto plan = callbackd::test::run_process({CALLBACKD_BINARY, "--config", env.work_dir() + "/callbackd.yaml",
                                                  "plan", "--refresh", "--tenant", "acme", "--detailed-exitcode"});
  INFO(plan.output);
  CHECK(plan.exit_status == 2);
  std::set<std::string> listed;
  std::istringstream lines(plan.output);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("  drift   mchid=", 0) == 0) listed.insert(line.substr(16, line.find(' ', 16) - 16));
  CHECK(listed == keys(changed));
  CHECK(contains(plan.output, "Refresh: 50 read, 10 drift"));
  CHECK(env.sandbox_reads().size() >= reads_before + 50);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 40}, {"drifted", 10}});
  // Until its desired row changes: a touch sends it again.
  env.exec("UPDATE callbackd.desired_callbacks SET notify_url = notify_url WHERE mchid = '" + sub_merchant(1, 0) + "'");
  REQUIRE(wait_until([&] { return env.sandbox_requests().size() == 51; }, 20s));
  REQUIRE(wait_until(
      [&] {
        return env.states() == std::map<std::string, long long>{{"in_sync", 41}, {"drifted", 9}};
      },
      10s));
  CHECK(daemon.signal_and_wait(SIGTERM, 30s) == 0);
}
