// Several `callbackd run` instances on one database (migrations/0003_tenant_leases.sql, 0013_rate_shares.sql):
// no sub-merchant in flight from two instances at once, every tenant's rate held across all
// of them, work spread over them, and a killed instance's tenants taken over.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "e2e/e2e_support.h"

using namespace e2e;

namespace {

// Starts an instance that exits once nothing is left to do.
callbackd::test::Child start_instance(const std::string& config) {
  return callbackd::test::spawn_process({CALLBACKD_BINARY, "--config", config, "run", "--exit-when-idle"});
}

constexpr int kRate = 1200;  // per tenant: 20 a second; the sandbox's 1 s window allows 30

// Three tenants with `rows` rows each at kRate, a sandbox as strict as that, and three
// instances started on one config (written once: rewriting it while one reads would race).
std::vector<callbackd::test::Child> start_three_instances(Environment& env, int rows) {
  for (int i = 1; i <= 3; ++i) {
    TenantSpec t("tenant" + std::to_string(i), "190000000" + std::to_string(i));
    t.rate_per_minute = kRate;
    env.add_tenant(t);
    env.add_rows(t.tenant_id, i, rows);
  }
  env.start_sandbox("  set_per_minute: " + std::to_string(kRate) + "\n");
  const std::string config = env.write_daemon_config();
  std::vector<callbackd::test::Child> instances;
  for (int i = 0; i < 3; ++i) instances.push_back(start_instance(config));
  return instances;
}

void check_converged_within_limits(Environment& env, int tenants, int rows, int rate_per_minute) {
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", tenants * rows}});
  const auto stats = env.sandbox_stats();
  INFO(stats.dump());
  CHECK(stats["concurrent_same_sub_merchant"] == 0);
  for (int i = 1; i <= tenants; ++i) {
    const auto& caller = stats["callers"]["190000000" + std::to_string(i)];
    CHECK(caller["outcomes"].count("429") == 0);
    CHECK(caller["max_in_1s"].get<int>() <= rate_per_minute * 3 / 120);
    CHECK(caller["max_in_60s"].get<int>() <= rate_per_minute);
  }
  // Every applied row has its audit row, written by the instance that applied it (or, for a row
  // the killed instance applied but had not recorded, by the one that adopted it after reading it).
  CHECK(env.count("SELECT count(*) FROM callbackd.sub_merchant_state s WHERE NOT EXISTS (SELECT 1 FROM "
                  "callbackd.audit_log a WHERE a.mchid = s.mchid AND a.outcome IN ('applied', 'adopted') AND "
                  "a.desired_revision = s.applied_revision)") == 0);
}

}  // namespace

TEST_CASE("3 instances share 3 tenants: spread, no overlap, every window within its limit", "[e2e][instances]") {
  Environment env;
  auto instances = start_three_instances(env, 300);
  for (auto& child : instances) {
    const int status = callbackd::test::wait_exit_status_for(child, std::chrono::seconds{150});
    INFO(callbackd::test::read_file(child.output_path));
    CHECK(status == 0);
  }
  check_converged_within_limits(env, 3, 300, kRate);
  // The work was spread: more than one instance applied rows.
  CHECK(env.count("SELECT count(DISTINCT instance) FROM callbackd.audit_log WHERE outcome = 'applied'") >= 2);
}

TEST_CASE("an instance killed midway: its tenants are taken over, limits still hold", "[e2e][instances]") {
  Environment env;
  auto instances = start_three_instances(env, 400);
  // Kill the instance that holds a tenant lease, once sending is well under way.
  std::string victim_instance;
  for (int i = 0; i < 300 && victim_instance.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    if (env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied'") < 150) continue;
    pqxx::connection c(env.db().conninfo());
    pqxx::read_transaction tx(c);
    auto r = tx.exec("SELECT instance_id FROM callbackd.tenant_leases ORDER BY tenant_id LIMIT 1");
    if (!r.empty()) victim_instance = r[0][0].as<std::string>();
  }
  REQUIRE(!victim_instance.empty());
  const pid_t victim_pid = std::stoi(victim_instance.substr(victim_instance.find(':') + 1));
  bool killed = false;
  for (auto& child : instances)
    if (child.pid == victim_pid) {
      kill(child.pid, SIGKILL);
      CHECK(callbackd::test::wait_exit_status_for(child, std::chrono::seconds{10}) == 128 + SIGKILL);
      killed = true;
    }
  REQUIRE(killed);
  for (auto& child : instances) {
    if (child.pid == victim_pid) continue;
    const int status = callbackd::test::wait_exit_status_for(child, std::chrono::seconds{180});
    INFO(callbackd::test::read_file(child.output_path));
    CHECK(status == 0);
  }
  check_converged_within_limits(env, 3, 400, kRate);
  CHECK(env.count("SELECT count(*) FROM callbackd.tenant_leases WHERE instance_id = '" + victim_instance + "'") == 0);
}

TEST_CASE("rate shares: two instances on two source addresses send one big tenant, and one killed hands its share over",
          "[e2e][instances][shares]") {
  // WeChat Pay as the older page documents it: 120 a minute from one source address; the
  // tenant's own limit 200 a minute, held by the sandbox as strictly as by WeChat Pay. Its
  // rate is cut into 5 shares of 40 (migrations/0013); one instance alone on one address
  // could send 120 a minute of it, two on two addresses send all 200.
  constexpr int kPerAddress = 120;
  constexpr int kTenantRate = 200;
  constexpr int kRows = 180;
  Environment env;
  TenantSpec t("big", "1900000001");
  t.rate_per_minute = kTenantRate;
  env.add_tenant(t);
  env.add_rows("big", 1, kRows);
  env.start_sandbox("  set_per_minute: " + std::to_string(kTenantRate) +
                    "\n  per_source_address_per_minute: " + std::to_string(kPerAddress) + "\n");
  std::vector<std::string> configs;
  for (const char* address : {"127.0.0.2", "127.0.0.3"}) {
    DaemonConfigOptions options;
    options.wechatpay_extra =
        "  egress_rate_per_minute: " + std::to_string(kPerAddress) + "\n  source_addresses: [" + address + "]\n";
    const std::string written = env.write_daemon_config("", options);
    configs.push_back(env.work_dir() + "/callbackd-" + address + ".yaml");
    REQUIRE(std::rename(written.c_str(), configs.back().c_str()) == 0);
  }
  std::vector<callbackd::test::Child> instances;
  for (const auto& config : configs) instances.push_back(start_instance(config));

  // Both send: wait until each instance applied rows of the one tenant.
  const std::string per_instance =
      "SELECT count(*) FROM (SELECT instance FROM callbackd.audit_log WHERE outcome = 'applied' GROUP BY instance "
      "HAVING count(*) >= 15) x";
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 600 && env.count(per_instance) < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  REQUIRE(env.count(per_instance) == 2);
  WARN("both instances sending after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
       << " ms, " << env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied'")
       << " rows applied");

  // Kill the instance that holds share 0; the other takes every share over.
  std::string victim_instance;
  {
    pqxx::connection c(env.db().conninfo());
    pqxx::read_transaction tx(c);
    victim_instance = tx.exec1("SELECT instance_id FROM callbackd.tenant_leases WHERE share = 0")[0].as<std::string>();
  }
  const pid_t victim_pid = std::stoi(victim_instance.substr(victim_instance.find(':') + 1));
  callbackd::test::Child* survivor = nullptr;
  for (auto& child : instances)
    if (child.pid == victim_pid) {
      kill(child.pid, SIGKILL);
      CHECK(callbackd::test::wait_exit_status_for(child, std::chrono::seconds{10}) == 128 + SIGKILL);
    } else {
      survivor = &child;
    }
  REQUIRE(survivor);
  const std::string survivor_shares =
      "SELECT count(*) FROM callbackd.tenant_leases WHERE instance_id <> '" + victim_instance + "'";
  for (int i = 0; i < 600 && env.count(survivor_shares) < 5; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  CHECK(env.count(survivor_shares) == 5);  // every share of the tenant: the victim's handed over
  const long long applied_at_takeover = env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied'");

  const int status = callbackd::test::wait_exit_status_for(*survivor, std::chrono::seconds{180});
  INFO(callbackd::test::read_file(survivor->output_path));
  CHECK(status == 0);
  CHECK(applied_at_takeover < kRows);  // the survivor sent the rest

  const auto stats = env.sandbox_stats();
  INFO(stats.dump());
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", kRows}});
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome NOT IN ('applied', 'adopted')") == 0);
  CHECK(stats["concurrent_same_sub_merchant"] == 0);  // none in flight twice
  // The tenant's windows, counted at the server across both instances, and each address's.
  const auto& caller = stats["callers"]["1900000001"];
  WARN("the tenant at the server: at most " << caller["max_in_60s"] << " in 60 s, " << caller["max_in_1s"]
                                            << " in 1 s (limits " << kTenantRate << ", " << kTenantRate * 3 / 120
                                            << ")");
  CHECK(caller["max_in_60s"].get<int>() <= kTenantRate);
  CHECK(caller["max_in_1s"].get<int>() <= kTenantRate * 3 / 120);
  REQUIRE(stats["source_addresses"].size() == 2);
  for (const char* address : {"127.0.0.2", "127.0.0.3"}) {
    INFO(address);
    CHECK(stats["source_addresses"][address]["max_in_60s"].get<int>() <= kPerAddress);
    CHECK(stats["source_addresses"][address]["requests"].get<int>() >= 15);
  }
  check_audit_matches_state_and_sandbox(env);
}
