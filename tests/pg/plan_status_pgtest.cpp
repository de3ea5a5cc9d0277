// `callbackd plan` and `callbackd status`, run as an operator runs them, against a database
// whose rows were put in every state by the real store.
#include <catch2/catch.hpp>

#include <pqxx/pqxx>

#include "core/reconcile/row_decision.h"
#include "pg/reconcile_store.h"
#include "pg/test_database.h"
#include "support/process.h"

using namespace std::chrono_literals;
using callbackd::test::run_process;
using callbackd::test::TestDatabase;
namespace pg = callbackd::pg;
namespace reconcile = callbackd::reconcile;
using callbackd::wechatpay::OutcomeKind;

namespace {

void exec(const TestDatabase& db, const std::string& sql) { callbackd::test::exec_sql(db, sql); }
long long scalar(const TestDatabase& db, const std::string& sql) { return callbackd::test::query_number(db, sql); }

void add_tenant(const TestDatabase& db, const std::string& tenant_id, const std::string& mode) {
  exec(db,
       "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
       "wechatpay_key_path, mode) VALUES ('" +
           tenant_id +
           "', '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', "
           "'k.pem', 'PUB_KEY_ID_0112', 'p.pem', '" +
           mode + "')");
}

void add_row(const TestDatabase& db, const std::string& tenant_id, const std::string& mchid, const std::string& url) {
  exec(db, "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES ('" + mchid + "', '" +
               tenant_id + "', '" + url + "', true)");
}

callbackd::reconcile::AttemptRecord record_for(const callbackd::reconcile::WorkItem& item, OutcomeKind outcome,
                                               const std::string& code = "") {
  reconcile::AttemptResult attempt;
  attempt.outcome = outcome;
  callbackd::reconcile::AttemptRecord r =
      callbackd::reconcile::attempt_record_for(item, callbackd::wechatpay::outcome_name(outcome));
  r.error_code = code;
  r.error_message = code.empty() ? "" : code + " from the test";
  r.http_status = outcome == OutcomeKind::applied ? 200 : 400;
  r.decision = reconcile::decide_after_attempt(attempt, reconcile::RowPolicy{}, reconcile::Instant{}, 0.5);
  return r;
}

// acme (apply): 101 applied, then changed (values_differ); 102 rejected (failed, parked);
//   103 never applied; 104 an invalid URL; 105 applied and untouched (in sync, not queued).
// watch (observe): 201 never applied. stop (paused): 301. broken (apply, paused by error): 401.
struct Fixture {
  TestDatabase db;
  std::string config;
  Fixture() {
    add_tenant(db, "acme", "apply");
    add_tenant(db, "watch", "observe");
    add_tenant(db, "stop", "paused");
    add_tenant(db, "broken", "apply");
    for (const char* m : {"1900000101", "1900000102", "1900000105"})
      add_row(db, "acme", m, "https://old.example.com/cb");
    callbackd::DatabaseConfig cfg;
    cfg.url = db.conninfo();
    pg::ReconcileStore store(cfg, "test:1");
    auto claimed = store.claim_due("acme", 10, 60s);
    REQUIRE(claimed.items.size() == 3);
    std::vector<callbackd::reconcile::AttemptRecord> batch;
    for (const auto& item : claimed.items)
      batch.push_back(item.sub_mchid == "1900000102" ? record_for(item, OutcomeKind::rejected, "PARAM_ERROR")
                                                     : record_for(item, OutcomeKind::applied));
    store.record(batch);
    exec(db,
         "UPDATE callbackd.desired_callbacks SET notify_url = 'https://new.example.com/cb' WHERE mchid = '1900000101'");
    add_row(db, "acme", "1900000103", "https://example.com/cb");
    add_row(db, "acme", "1900000104", "http://insecure.example.com/cb");
    add_row(db, "watch", "1900000201", "https://example.com/cb");
    add_row(db, "stop", "1900000301", "https://example.com/cb");
    add_row(db, "broken", "1900000401", "https://example.com/cb");
    store.pause_tenant("broken", "SIGN_ERROR", "signature rejected", 240s);
    config = callbackd::test::write_config_for(db.conninfo());
  }
};

bool has(const std::string& output, const std::string& needle) { return output.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("plan lists what run would send, per tenant and row, and sends and claims nothing", "[pg][plan]") {
  Fixture f;
  const long long audit_before = scalar(f.db, "SELECT count(*) FROM callbackd.audit_log");
  auto r = run_process({CALLBACKD_BINARY, "--config", f.config, "plan"});
  INFO(r.output);
  CHECK(r.exit_status == 0);
  CHECK(has(r.output, "tenant acme (mode apply)\n"));
  CHECK(has(r.output,
            "  send    mchid=1900000101 reason=values_differ notify_url=https://new.example.com/cb switch=true "
            "applied_notify_url=https://old.example.com/cb applied_switch=true"));
  CHECK(has(
      r.output,
      "  send    mchid=1900000103 reason=never_applied notify_url=https://example.com/cb switch=true applied=none"));
  CHECK(has(r.output, "  invalid mchid=1900000104 reason=invalid message="));
  CHECK_FALSE(has(r.output, "mchid=1900000102"));  // parked: failed until changed
  CHECK_FALSE(has(r.output, "mchid=1900000105"));  // in sync
  CHECK(has(r.output, "  = 2 to send, 1 to mark invalid, 0 held, 0 to drop"));
  CHECK(has(r.output, "tenant watch (mode observe): not sent: tenant mode observe"));
  CHECK(has(r.output, "  held    mchid=1900000201 reason=never_applied"));
  CHECK(has(r.output, "tenant stop (mode paused): not sent: tenant mode paused"));
  CHECK(has(
      r.output,
      "tenant broken (mode apply): not sent: tenant paused by error SIGN_ERROR: \"signature rejected\"; one probe in"));
  CHECK(has(
      r.output,
      "Plan: 2 to send, 1 to mark invalid, 3 held (tenant observe, paused, paused by error, or by the change budget), "
      "0 to drop."));

  // Read-only: no claim, no audit row.
  CHECK(scalar(f.db, "SELECT count(*) FROM callbackd.pending_work WHERE claim_token IS NOT NULL") == 0);
  CHECK(scalar(f.db, "SELECT count(*) FROM callbackd.audit_log") == audit_before);

  auto detailed = run_process({CALLBACKD_BINARY, "--config", f.config, "plan", "--detailed-exitcode"});
  CHECK(detailed.exit_status == 2);
}

TEST_CASE("plan --detailed-exitcode exits 0 when nothing would be sent and 1 on error", "[pg][plan]") {
  TestDatabase db;
  add_tenant(db, "acme", "apply");
  const std::string config = callbackd::test::write_config_for(db.conninfo());
  auto empty = run_process({CALLBACKD_BINARY, "--config", config, "plan", "--detailed-exitcode"});
  INFO(empty.output);
  CHECK(empty.exit_status == 0);
  CHECK(has(empty.output, "  nothing queued"));
  CHECK(has(empty.output, "Plan: 0 to send"));

  // Only an observe tenant's rows and an invalid row: nothing would be applied.
  add_tenant(db, "watch", "observe");
  add_row(db, "watch", "1900000201", "https://example.com/cb");
  add_row(db, "acme", "1900000101", "");
  auto held = run_process({CALLBACKD_BINARY, "--config", config, "plan", "--detailed-exitcode"});
  INFO(held.output);
  CHECK(held.exit_status == 0);
  CHECK(has(held.output, "  invalid mchid=1900000101 reason=invalid message="));

  const std::string unreachable =
      callbackd::test::write_config_for("host=/nonexistent/socket/dir dbname=x user=callbackd password=hunter2");
  auto failed = run_process({CALLBACKD_BINARY, "--config", unreachable, "plan", "--detailed-exitcode"});
  INFO(failed.output);
  CHECK(failed.exit_status == 1);
  CHECK(has(failed.output, "host=/nonexistent/socket/dir"));
  CHECK_FALSE(has(failed.output, "hunter2"));
}

TEST_CASE("plan bounds its output per tenant and escapes what it prints", "[pg][plan]") {
  TestDatabase db;
  add_tenant(db, "acme", "apply");
  // First in the queue, so that it is among the rows shown.
  exec(db,
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
       "VALUES ('1900009999', 'acme', E'https://evil.example.com/\\x1b[2J\\nfake line')");
  exec(db,
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
       "SELECT (1900000000 + g)::text, 'acme', 'https://example.com/cb/' || g FROM generate_series(1, 70) g");
  const std::string config = callbackd::test::write_config_for(db.conninfo());
  auto r = run_process({CALLBACKD_BINARY, "--config", config, "plan"});
  INFO(r.output);
  CHECK(r.exit_status == 0);
  CHECK(has(r.output, "  ... and 21 more\n"));
  CHECK(has(r.output, "  = 70 to send, 1 to mark invalid, 0 held, 0 to drop"));
  CHECK(has(r.output, "  invalid mchid=1900009999 reason=invalid message="));
  CHECK_FALSE(has(r.output, "\x1b"));
  CHECK_FALSE(has(r.output, "\nfake line"));
}

TEST_CASE("status shows per-tenant counts by state and error code, pauses and the oldest pending change",
          "[pg][status]") {
  Fixture f;
  auto r = run_process({CALLBACKD_BINARY, "--config", f.config, "status"});
  INFO(r.output);
  CHECK(r.exit_status == 0);
  CHECK(has(r.output, "status: database host="));
  CHECK(has(r.output,
            "tenant acme  mode apply\n  rows 5: in_sync 1, pending 3, failed 1\n"
            "  errors: PARAM_ERROR 1 (failed)\n  queue: 3 entries, oldest pending change "));
  CHECK(has(r.output, "tenant watch  mode observe\n  rows 1: pending 1\n"));
  CHECK(has(r.output, "tenant stop  mode paused\n  rows 1: paused 1\n"));
  CHECK(has(r.output, "tenant broken  mode apply  PAUSED by error SIGN_ERROR: \"signature rejected\" (next probe in "));

  exec(f.db, "DROP VIEW callbackd.sync_status");
  auto broken = run_process({CALLBACKD_BINARY, "--config", f.config, "status"});
  INFO(broken.output);
  CHECK(broken.exit_status == 1);
  CHECK(has(broken.output, "callbackd: status: "));
}

TEST_CASE("plan shows resync rows, rows in flight elsewhere and rows waiting on a retry", "[pg][plan]") {
  TestDatabase db;
  add_tenant(db, "acme", "apply");
  for (const char* m : {"1900000101", "1900000102", "1900000103"}) add_row(db, "acme", m, "https://example.com/cb");
  callbackd::DatabaseConfig cfg;
  cfg.url = db.conninfo();
  pg::ReconcileStore store(cfg, "host-a:1");
  auto claimed = store.claim_due("acme", 10, 60s);
  REQUIRE(claimed.items.size() == 3);
  std::vector<callbackd::reconcile::AttemptRecord> batch;
  for (const auto& item : claimed.items) {
    auto rec = record_for(item, OutcomeKind::applied);
    if (item.sub_mchid == "1900000103") {
      rec = record_for(item, OutcomeKind::transient, "TIMEOUT");
      rec.decision.delay = std::chrono::minutes{5};
    }
    batch.push_back(rec);
  }
  store.record(batch);
  CHECK(store.queue_resync() == 2);  // 101 and 102 are in sync; 103 is queued already
  auto in_flight = store.claim_due("acme", 1, 60s);
  REQUIRE(in_flight.items.size() == 1);
  const std::string config = callbackd::test::write_config_for(db.conninfo());
  auto r = run_process({CALLBACKD_BINARY, "--config", config, "plan", "--detailed-exitcode"});
  INFO(r.output);
  CHECK(r.exit_status == 2);
  CHECK(has(r.output, "mchid=" + in_flight.items[0].sub_mchid + " reason=resync"));
  CHECK(has(r.output, "(in flight at host-a:1)"));
  CHECK(has(r.output, "mchid=1900000103 reason=never_applied"));
  CHECK(has(r.output, "(due in 4m"));
  CHECK(has(r.output, "(1 failed attempt(s))"));
  CHECK(has(r.output, "  = 3 to send, 0 to mark invalid, 0 held, 0 to drop"));
}
