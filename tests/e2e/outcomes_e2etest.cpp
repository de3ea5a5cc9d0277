// Every error code of the seed's table (and 401, 5xx) ends in its defined state with a
// matching audit row; a broken tenant is paused while the others converge.
#include <catch2/catch.hpp>

#include <map>
#include <pqxx/pqxx>
#include <sstream>

#include "e2e/e2e_support.h"

using namespace e2e;

namespace {
std::string one(Environment& env, const std::string& sql) {
  pqxx::connection c(env.db().conninfo());
  pqxx::read_transaction tx(c);
  auto r = tx.exec1(sql);
  return r[0].is_null() ? "NULL" : r[0].as<std::string>();
}
}  // namespace

TEST_CASE("each permanent error code parks its row in failed, with its audit row", "[e2e][outcomes]") {
  struct Row {
    std::string code;
    int status;
  };
  const std::vector<Row> permanent = {
      {"PARAM_ERROR", 400},           {"MCH_NOT_EXISTS", 400}, {"INVALID_REQUEST", 400}, {"APPID_MCHID_NOT_MATCH", 400},
      {"USER_ACCOUNT_ABNORMAL", 403}, {"NOT_ENOUGH", 403},     {"REQUEST_BLOCKED", 403}, {"RESOURCE_NOT_EXISTS", 404},
  };
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 50);
  std::ostringstream faults;
  faults << "  seed: 7\n  sub_merchants:\n";
  for (std::size_t i = 0; i < permanent.size(); ++i)
    faults << "    \"" << sub_merchant(1, static_cast<int>(i)) << "\": {kind: error, code: " << permanent[i].code
           << "}\n";
  // Transient server errors on a third of the other requests: retried until they succeed.
  faults << "  random:\n    - {kind: error, code: SYSTEM_ERROR, probability: 0.2}\n"
         << "    - {kind: error, code: SYSTEM_ERROR, status: 503, probability: 0.1}\n";
  env.start_sandbox("", faults.str());
  auto run = env.run_until_idle(std::chrono::seconds{120},
                                "reconciler:\n  retry_initial_backoff: 50ms\n  retry_max_backoff: 200ms\n");
  INFO(run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0));
  REQUIRE(run.exit_status == 2);  // idle with work left: the failed rows (cli.md)

  CHECK(env.states() == std::map<std::string, long long>{{"failed", 8}, {"in_sync", 42}});
  for (std::size_t i = 0; i < permanent.size(); ++i) {
    const std::string m = sub_merchant(1, static_cast<int>(i));
    INFO(permanent[i].code);
    CHECK(one(env,
              "SELECT state || ' ' || last_http_status || ' ' || last_error_code FROM callbackd.sync_status "
              "WHERE mchid = '" +
                  m + "'") == "failed " + std::to_string(permanent[i].status) + " " + permanent[i].code);
    // Exactly one attempt: a permanent error is not retried until the row changes.
    CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE mchid = '" + m +
                    "' AND outcome = 'rejected' "
                    "AND error_code = '" +
                    permanent[i].code + "' AND http_status = " + std::to_string(permanent[i].status) +
                    " AND request_id IS NOT NULL") == 1);
    CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE mchid = '" + m + "'") == 1);
  }
  // The 5xx answers were recorded as transient attempts and retried to success.
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'transient' AND http_status IN (500, 503) "
                  "AND error_code = 'SYSTEM_ERROR'") > 0);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied'") == 42);

  // Touching a failed row makes it due again (the operator's retry): it is sent once more.
  const auto before = env.sandbox_requests().size();
  env.exec("UPDATE callbackd.desired_callbacks SET notify_url = notify_url WHERE mchid = '" + sub_merchant(1, 0) + "'");
  auto again = env.run_until_idle(std::chrono::seconds{60});
  CHECK(again.exit_status == 2);  // seven rows still failed
  CHECK(env.sandbox_requests().size() == before + 1);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE mchid = '" + sub_merchant(1, 0) + "'") == 2);
}

// Invalid desired rows (marked invalid, stored verbatim, never sent) are the table of
// bad_input_e2etest.cpp, "hostile desired rows: ...".

TEST_CASE("a tenant with a wrong key is paused while the others converge at full speed", "[e2e][outcomes]") {
  Environment env;
  env.add_tenant(TenantSpec("good1", "1900000001"));
  env.add_tenant(TenantSpec("good2", "1900000002"));
  TenantSpec broken("broken", "1900000003");
  broken.private_key_path = "merchant_1900000004.key";  // signs as 1900000003 with another merchant's key
  env.add_tenant(broken);
  env.add_rows("good1", 1, 300);
  env.add_rows("good2", 2, 300);
  env.add_rows("broken", 3, 300);
  env.start_sandbox();
  const auto started = std::chrono::steady_clock::now();
  auto run = env.run_until_idle();
  const auto took = std::chrono::steady_clock::now() - started;
  INFO(run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0));
  REQUIRE(run.exit_status == 2);  // idle with work left: the paused tenant (cli.md)
  CHECK(env.count(
            "SELECT count(*) FROM callbackd.sync_status WHERE tenant_id IN ('good1', 'good2') AND state = 'in_sync'") ==
        600);
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'broken' AND state = 'paused'") == 300);
  CHECK(one(env, "SELECT error_code FROM callbackd.tenant_state WHERE tenant_id = 'broken'") == "SIGN_ERROR");
  // Only the requests in flight when the first 401 came back reached the sandbox.
  const auto stats = env.sandbox_stats();
  CHECK(stats["callers"]["1900000003"]["requests"].get<int>() <= 8);
  // Full speed: 300 rows at 1,000 a second take well under the 90 s limit even on a busy machine.
  CHECK(took < std::chrono::seconds{30});
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE tenant_id = 'broken' AND mchid IS NULL AND "
                  "outcome = 'tenant_error' AND error_code = 'SIGN_ERROR'") == 1);
}

TEST_CASE("a tenant whose key path escapes the credentials directory is paused with the reason", "[e2e][outcomes]") {
  Environment env;
  env.add_tenant(TenantSpec("good", "1900000001"));
  TenantSpec escaping("escaping", "1900000002");
  escaping.private_key_path = "../../../etc/passwd";
  env.add_tenant(escaping);
  env.add_rows("good", 1, 20);
  env.add_rows("escaping", 2, 20);
  env.start_sandbox();
  auto run = env.run_until_idle();
  INFO(run.output);
  REQUIRE(run.exit_status == 2);  // idle with work left: the paused tenant (cli.md)
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'good' AND state = 'in_sync'") == 20);
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'escaping' AND state = 'paused'") ==
        20);
  CHECK(one(env, "SELECT paused_reason FROM callbackd.tenant_state WHERE tenant_id = 'escaping'")
            .find("'..' is refused") != std::string::npos);
  CHECK(env.sandbox_stats()["callers"].count("1900000002") == 0);
}
