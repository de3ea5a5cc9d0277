// The status page's reads (ReconcileStore::read_status, daemon/pg/sql/status_*.sql) on a real
// database: the numbers are sync_status's, the lists are bounded and newest first, stored
// values over 1 KiB are cut by the database, and the new index serves the newest invalid rows.
// The page in a browser against a running daemon: tests/e2e/status_page_e2etest.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <pqxx/pqxx>

#include "pg/reconcile_store.h"
#include "pg/statements.h"
#include "pg/test_database.h"

using callbackd::test::TestDatabase;
namespace pg = callbackd::pg;
namespace status = callbackd::status;

namespace {

template <class... Params>
void run_sql(const TestDatabase& db, const std::string& sql, const Params&... params) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec_params(sql, params...);
  tx.commit();
}

// A tenant with `rows` desired rows 19000000NN, and state rows: the first `failed` failed with
// PARAM_ERROR, one invalid with a 10 MB URL (the row 1 beyond), the rest in sync.
void tenant_with_rows(const TestDatabase& db, const std::string& tenant, int first, int rows, int failed) {
  run_sql(db,
          "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
          "wechatpay_key_path) VALUES ($1, '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', 'k.pem', "
          "'PUB_KEY_ID_0112', 'p.pem')",
          tenant);
  run_sql(db,
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) "
          "SELECT (1900000000 + i)::text, $1, 'https://n.example.com/' || i, true "
          "FROM generate_series($2::int, $2::int + $3::int - 1) i",
          tenant, std::to_string(first), std::to_string(rows));
  // What the daemon would have recorded, at each row's current revision.
  run_sql(db,
          "INSERT INTO callbackd.sub_merchant_state (mchid, tenant_id, revision, state, applied_notify_url, "
          "applied_switch, last_error_code, last_error_message, changed_at) "
          "SELECT d.mchid, d.tenant_id, d.revision, "
          "  CASE WHEN n < $2::int THEN 'failed' ELSE 'in_sync' END, "
          "  CASE WHEN n < $2::int THEN NULL ELSE d.notify_url END, true, "
          "  CASE WHEN n < $2::int THEN 'PARAM_ERROR' END, CASE WHEN n < $2::int THEN 'bad' END, "
          "  now() - n * interval '1 second' "
          "FROM (SELECT *, row_number() OVER (ORDER BY mchid) - 1 AS n FROM callbackd.desired_callbacks "
          "      WHERE tenant_id = $1) d",
          tenant, std::to_string(failed));
  run_sql(db, "DELETE FROM callbackd.pending_work WHERE tenant_id = $1", tenant);
}

}  // namespace

TEST_CASE("status page reads: counts as sync_status, bounded lists, long values cut by the database",
          "[pg][status-page]") {
  TestDatabase db;
  tenant_with_rows(db, "acme", 1, 30, 8);
  tenant_with_rows(db, "bravo", 101, 3, 0);
  // An invalid row with a 10 MB URL, and a queued row (pending).
  run_sql(db,
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) VALUES ('1900000999', 'acme', "
          "'https://big.example.com/' || repeat('x', 10 * 1024 * 1024))");
  run_sql(db,
          "INSERT INTO callbackd.sub_merchant_state (mchid, tenant_id, revision, state, last_error_code, "
          "last_error_message) SELECT mchid, tenant_id, revision, 'invalid', 'INVALID_NOTIFY_URL', 'too long' "
          "FROM callbackd.desired_callbacks WHERE mchid = '1900000999'");
  run_sql(db,
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) VALUES ('1900000998', 'bravo', "
          "'https://n.example.com/new')");
  for (int i = 0; i < 30; ++i)
    run_sql(db,
            "INSERT INTO callbackd.audit_log (tenant_id, mchid, notify_url, outcome) VALUES ('acme', '1900000001', "
            "$1, 'applied')",
            i == 29 ? "https://big.example.com/" + std::string(5000, 'y') : std::string("https://n.example.com/1"));

  callbackd::DatabaseConfig cfg;
  cfg.url = db.conninfo();
  pg::ReconcileStore store(cfg, "test:1");
  const auto view = store.read_status({status::PageKind::overview, ""});

  REQUIRE(view.tenants.size() == 2);
  CHECK(view.tenants[0].tenant_id == "acme");
  CHECK(view.tenants[0].by_state == std::map<std::string, long long>{{"in_sync", 22}, {"failed", 8}, {"invalid", 1}});
  CHECK(view.tenants[1].by_state == std::map<std::string, long long>{{"in_sync", 3}, {"pending", 1}});
  CHECK(view.tenants[0].queued == 1);  // the invalid row, inserted after the others were settled
  CHECK(view.tenants[1].queued == 1);
  CHECK(view.tenants[1].oldest_change_ms.has_value());
  CHECK(view.tenants[0].holders.empty());
  CHECK(view.scans_took_ms.has_value());

  // Without scans: the same tenants and bounded lists, no counts, no error groups, no timing
  // (the page reuses its earlier scans, status::carry_scans).
  const auto bounded = store.read_status({status::PageKind::overview, "", false});
  REQUIRE(bounded.tenants.size() == 2);
  CHECK(bounded.tenants[0].by_state.empty());
  CHECK(bounded.tenants[0].queued == 0);
  CHECK(bounded.errors.empty());
  CHECK_FALSE(bounded.scans_took_ms);
  CHECK(bounded.invalid.size() == 1);
  CHECK(bounded.audit.size() == static_cast<std::size_t>(status::kAuditRows));

  REQUIRE(view.errors.size() == 1);
  CHECK(view.errors[0].error_code == "PARAM_ERROR");
  CHECK(view.errors[0].rows == 8);
  // The first kSampleMchids by mchid.
  CHECK(view.errors[0].sample_mchids ==
        std::vector<std::string>{"1900000001", "1900000002", "1900000003", "1900000004", "1900000005"});

  REQUIRE(view.invalid.size() == 1);
  CHECK(view.invalid[0].mchid == "1900000999");
  CHECK(view.invalid[0].notify_url == "https://big.example.com/" + std::string(256 - 24, 'x') + "…(" +
                                          std::to_string(24 + 10 * 1024 * 1024) + " bytes)");

  // The newest kAuditRows, newest first; the 5000-byte URL cut too.
  REQUIRE(view.audit.size() == static_cast<std::size_t>(status::kAuditRows));
  CHECK(view.audit[0].id > view.audit[1].id);
  CHECK(view.audit[0].notify_url->size() < 300 + 20);
  CHECK(view.audit[0].notify_url->find("…(5024 bytes)") != std::string::npos);

  // A tenant page: only that tenant; an unknown tenant: nothing.
  const auto bravo = store.read_status({status::PageKind::tenant, "bravo"});
  REQUIRE(bravo.tenants.size() == 1);
  CHECK(bravo.errors.empty());
  CHECK(bravo.audit.empty());
  CHECK(store.read_status({status::PageKind::tenant, "nobody"}).tenants.empty());

  // One sub-merchant: desired and applied values, its audit history.
  const auto one = store.read_status({status::PageKind::sub_merchant, "1900000001"});
  REQUIRE(one.sub_merchant);
  CHECK(one.sub_merchant->state == "failed");
  CHECK(one.sub_merchant->desired_notify_url == "https://n.example.com/1");
  CHECK_FALSE(one.sub_merchant->applied_notify_url);
  CHECK(one.sub_merchant->last_error_code == "PARAM_ERROR");
  CHECK(one.audit.size() == 30);
  const auto queued = store.read_status({status::PageKind::sub_merchant, "1900000998"});
  REQUIRE(queued.sub_merchant);
  CHECK(queued.sub_merchant->queued);
  CHECK(queued.sub_merchant->state == "pending");
  CHECK_FALSE(store.read_status({status::PageKind::sub_merchant, "<script>"}).sub_merchant);
}

TEST_CASE("status page reads: the newest invalid rows come from an index, not a scan", "[pg][status-page]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  // The tables are tiny here, so the planner would rightly scan them; what is checked is that
  // an index serves the query as written (ORDER BY changed_at DESC LIMIT), i.e. that it stays
  // cheap on a million rows.
  tx.exec0("SET LOCAL enable_seqscan = off");
  tx.exec0("SET LOCAL enable_sort = off");
  // The statement the page runs, as the daemon prepares it.
  tx.exec0("PREPARE newest_invalid(int) AS " + pg::statement_text("status_invalid_latest"));
  std::string plan;
  for (const auto& r : tx.exec("EXPLAIN EXECUTE newest_invalid(50)")) plan += r[0].as<std::string>() + "\n";
  INFO(plan);
  CHECK(plan.find("sub_merchant_state_state_changed") != std::string::npos);
  CHECK(plan.find("Sort") == std::string::npos);
}

// status_error_groups.sql finds failing rows from the state index instead of deriving every
// row's state through the view; here it must group exactly what sync_status shows as retrying
// or failed, over every way the view shows a failing state row as something else.
TEST_CASE("status page reads: error groups from the state index are sync_status's groups", "[pg][status-page]") {
  TestDatabase db;
  tenant_with_rows(db, "acme", 1, 40, 12);
  tenant_with_rows(db, "bravo", 101, 10, 4);   // paused by the daemon
  tenant_with_rows(db, "cobalt", 201, 10, 3);  // mode paused
  tenant_with_rows(db, "delta", 301, 10, 5);
  // Some of acme's failures retrying, with another code; one failure of delta without a code.
  run_sql(db,
          "UPDATE callbackd.sub_merchant_state SET state = 'retrying', last_error_code = 'SYSTEM_ERROR' "
          "WHERE mchid IN ('1900000001', '1900000002', '1900000003')");
  run_sql(db, "UPDATE callbackd.sub_merchant_state SET last_error_code = NULL WHERE mchid = '1900000301'");
  // A failed row changed since (pending), and one whose change is held by the budget.
  run_sql(db,
          "UPDATE callbackd.desired_callbacks SET notify_url = 'https://n.example.com/v2' WHERE mchid = '1900000004'");
  run_sql(db,
          "UPDATE callbackd.desired_callbacks SET notify_url = 'https://n.example.com/v3' WHERE mchid = '1900000005'");
  run_sql(db, "UPDATE callbackd.pending_work SET held_at = now(), held_reason = 'budget' WHERE mchid = '1900000005'");
  run_sql(
      db,
      "INSERT INTO callbackd.tenant_state (tenant_id, paused_reason, error_code) VALUES ('bravo', 'x', 'SIGN_ERROR')");
  run_sql(db, "UPDATE callbackd.tenants SET mode = 'paused' WHERE tenant_id = 'cobalt'");

  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  const auto rows = [&](const std::string& sql) {
    std::vector<std::string> out;
    for (const auto& r : tx.exec(sql))
      out.push_back(r[0].as<std::string>() + " " + r[1].as<std::string>() + " " + r[2].as<std::string>() + " " +
                    r[3].as<std::string>());
    std::sort(out.begin(), out.end());
    return out;
  };
  tx.exec0("PREPARE groups(text, int, int) AS " + pg::statement_text("status_error_groups"));
  const auto from_index = rows("EXECUTE groups(NULL, 5, 50)");
  const auto from_view = rows(
      "SELECT tenant_id, state, last_error_code, count(*) FROM callbackd.sync_status "
      "WHERE state IN ('retrying', 'failed') AND last_error_code IS NOT NULL GROUP BY 1, 2, 3");
  CHECK(from_index == from_view);
  // Not vacuous: acme's 12 failures less the pending and the held one, split by code; delta's
  // five less the one without a code; nothing of the two paused tenants.
  CHECK(from_index == std::vector<std::string>{"acme failed PARAM_ERROR 7", "acme retrying SYSTEM_ERROR 3",
                                               "delta failed PARAM_ERROR 4"});
  const auto one = rows("EXECUTE groups('delta', 5, 50)");
  CHECK(one == std::vector<std::string>{"delta failed PARAM_ERROR 4"});
}
