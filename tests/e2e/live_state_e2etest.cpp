// Live state (issue 15): the daemon reads back what WeChat Pay holds (GET
// /v3/marketing/favor/callbacks?mchid=M) to adopt settings already right and to find and repair
// (or report) values changed out of band. The sandbox's POST /sandbox/set plays "out of band".
#include <catch2/catch.hpp>

#include <map>
#include <pqxx/pqxx>
#include <set>
#include <string>

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
