// Every ```sql block of docs/sql.md runs, in the page's order, against a freshly migrated
// database, as callbackd_operator (the group role of migrations/0004_roles.sql), so the page
// shows only what an operator may do. After the first block (tenants) a small fixture, written
// as the superuser, records a few rows as the daemon would have (one in sync, one refused with
// NOT_ENOUGH, with audit rows). Each block runs in its own transaction; any error fails the
// test and names the block's line in the page, so the reference cannot drift from the schema.
#include <catch2/catch.hpp>

#include <fstream>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <vector>

#include "pg/test_database.h"

using callbackd::test::TestDatabase;

namespace {

struct SqlBlock {
  int line;  // 1-based line of the opening fence
  std::string sql;
};

std::vector<SqlBlock> sql_blocks(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<SqlBlock> blocks;
  std::string line;
  int n = 0;
  bool inside = false;
  bool is_sql = false;
  SqlBlock current;
  while (std::getline(in, line)) {
    ++n;
    if (line.starts_with("```")) {
      if (!inside) {
        inside = true;
        is_sql = line == "```sql";
        current = SqlBlock{n, ""};
      } else {
        inside = false;
        if (is_sql) blocks.push_back(current);
      }
      continue;
    }
    if (inside && is_sql) current.sql += line + "\n";
  }
  REQUIRE_FALSE(inside);  // an unclosed fence would silently drop the rest of the page
  return blocks;
}

// Runs one block in its own transaction, as `role` (empty: the superuser the test connects as).
void run_block(pqxx::connection& c, const SqlBlock& b, const std::string& page = "docs/sql.md",
               const std::string& role = "callbackd_operator") {
  INFO(page << " block at line " << b.line << ":\n" << b.sql);
  try {
    pqxx::work tx(c);
    if (!role.empty()) tx.exec0("SET LOCAL ROLE " + role);
    tx.exec(b.sql);
    tx.commit();
  } catch (const std::exception& e) {
    FAIL(page << " line " << b.line << ": " << e.what());
  }
}

// What the daemon would have recorded for two of acme's sub-merchants: 1711000008 applied,
// 1711000007 refused with 403 NOT_ENOUGH. Their desired rows carry the values the page's bulk
// load writes, so that load leaves them alone.
const char* const kDaemonFixture = R"SQL(
INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES
  ('1711000007', 'acme', 'https://hooks.acme.example/wxpay/favor/7', true),
  ('1711000008', 'acme', 'https://hooks.acme.example/wxpay/favor/8', true);
DELETE FROM callbackd.pending_work WHERE mchid IN ('1711000007', '1711000008');
INSERT INTO callbackd.sub_merchant_state (mchid, tenant_id, revision, state, applied_notify_url,
  applied_switch, applied_revision, update_time, attempts, last_http_status, last_error_code,
  last_error_message)
SELECT mchid, tenant_id, revision,
       CASE WHEN mchid = '1711000008' THEN 'in_sync' ELSE 'failed' END,
       CASE WHEN mchid = '1711000008' THEN notify_url END,
       CASE WHEN mchid = '1711000008' THEN switch END,
       CASE WHEN mchid = '1711000008' THEN revision END,
       CASE WHEN mchid = '1711000008' THEN '2026-11-27T06:07:45.123+08:00' END,
       CASE WHEN mchid = '1711000008' THEN 0 ELSE 1 END,
       CASE WHEN mchid = '1711000008' THEN 200 ELSE 403 END,
       CASE WHEN mchid = '1711000008' THEN NULL ELSE 'NOT_ENOUGH' END,
       CASE WHEN mchid = '1711000008' THEN NULL ELSE '批次预算不足' END
FROM callbackd.desired_callbacks WHERE mchid IN ('1711000007', '1711000008');
INSERT INTO callbackd.audit_log (tenant_id, mchid, notify_url, switch, http_status, error_code,
  error_message, request_id, outcome, latency_ms, attempt)
VALUES
  ('acme', '1711000008', 'https://hooks.acme.example/wxpay/favor/8', true, 200, NULL, NULL,
   '08DEF1A2B3C4D5E6', 'applied', 41, 1),
  ('acme', '1711000007', 'https://hooks.acme.example/wxpay/favor/7', true, 403, 'NOT_ENOUGH',
   '批次预算不足', '08DEF1A2B3C4D5E7', 'rejected', 39, 1);
)SQL";

std::string state_of(pqxx::connection& c, const std::string& mchid) {
  pqxx::read_transaction tx(c);
  return tx.exec_params1("SELECT state FROM callbackd.sync_status WHERE mchid = $1", mchid)[0].as<std::string>();
}

}  // namespace

TEST_CASE("every SQL example of docs/sql.md runs against a migrated database") {
  const auto blocks = sql_blocks(std::string(CALLBACKD_SOURCE_DIR) + "/docs/sql.md");
  REQUIRE(blocks.size() >= 12);  // the page's examples; fewer means the extraction broke

  TestDatabase db;
  pqxx::connection c(db.conninfo());
  REQUIRE(blocks[0].sql.find("INSERT INTO callbackd.tenants") != std::string::npos);
  run_block(c, blocks[0]);
  {
    pqxx::work tx(c);
    tx.exec(kDaemonFixture);
    tx.commit();
  }
  REQUIRE(state_of(c, "1711000007") == "failed");
  REQUIRE(state_of(c, "1711000008") == "in_sync");

  for (std::size_t i = 1; i < blocks.size(); ++i) {
    run_block(c, blocks[i]);
    // The bulk load must leave unchanged rows alone (the page promises it).
    if (blocks[i].sql.find("generate_series(1, 10000)") != std::string::npos) {
      CHECK(state_of(c, "1711000008") == "in_sync");
      pqxx::read_transaction tx(c);
      CHECK(tx.exec1("SELECT count(*) FROM callbackd.desired_callbacks WHERE tenant_id = 'acme'")[0].as<long>() ==
            10000);
    }
  }
  // The page's re-send examples made the failed row due again.
  CHECK(state_of(c, "1711000007") == "pending");
}

// The other pages' SQL is for the DBA and the on-call engineer (roles, tenants, retention,
// diagnosis): every block runs too, as the superuser, in page order: install.md registers the
// tenant the runbook's examples name. The example login roles are cluster-wide, so they are
// dropped again afterwards.
TEST_CASE("every SQL example of install.md, runbook.md and security.md runs against a migrated database") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  const char* const drop_roles = "DROP ROLE IF EXISTS alice, callbackd, callbackd_retention_job";
  {
    pqxx::nontransaction tx(c);
    tx.exec0(drop_roles);
  }
  std::size_t total = 0;
  for (const std::string page : {"docs/install.md", "docs/runbook.md", "docs/security.md"}) {
    const auto blocks = sql_blocks(std::string(CALLBACKD_SOURCE_DIR) + "/" + page);
    CHECK(!blocks.empty());
    total += blocks.size();
    for (const auto& b : blocks) run_block(c, b, page, "");
  }
  CHECK(total >= 7);
  {
    pqxx::read_transaction tx(c);
    CHECK(tx.exec1("SELECT rate_per_minute FROM callbackd.tenants WHERE tenant_id = 'acme'")[0].as<int>() == 600);
  }
  pqxx::nontransaction tx(c);
  tx.exec0("REASSIGN OWNED BY alice, callbackd, callbackd_retention_job TO postgres");
  tx.exec0("DROP OWNED BY alice, callbackd, callbackd_retention_job");
  tx.exec0(drop_roles);
}
