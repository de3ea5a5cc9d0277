// The live state's statements on a real database (migrations/0011): an adoption is recorded like
// an attempt (state and audit row in one statement), drift checks are claimed with their own
// read tokens and fenced by them, drift is recorded with its audit row and repaired or reported
// by the tenant's drift_policy.
#include <catch2/catch.hpp>

#include <pqxx/pqxx>

#include "core/reconcile/work.h"
#include "pg/reconcile_store.h"
#include "pg/test_database.h"

using namespace std::chrono_literals;
using callbackd::test::database_config;
using callbackd::test::TestDatabase;
namespace pg = callbackd::pg;
namespace reconcile = callbackd::reconcile;

namespace {

void exec(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec(sql);
  tx.commit();
}

std::string text(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  auto r = tx.exec(sql);
  return r.empty() || r[0][0].is_null() ? "<null>" : r[0][0].as<std::string>();
}

// A tenant with `policy` and two desired rows, 1900000100 and 1900000101.
void prepare(const TestDatabase& db, const std::string& policy) {
  exec(db,
       "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
       "wechatpay_key_path, drift_policy) VALUES ('acme', '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', "
       "'k.pem', 'PUB_KEY_ID_0112', 'p.pem', '" +
           policy +
           "');"
           "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES "
           "('1900000100', 'acme', 'https://example.com/cb/100', true), "
           "('1900000101', 'acme', 'https://example.com/cb/101', NULL)");
}

// Both rows adopted: claimed, then recorded as the live reader records an adoption.
void adopt_both(pg::ReconcileStore& store) {
  const auto claimed = store.claim_due("acme", 10, 60s);
  REQUIRE(claimed.adopt_existing);  // the column's default
  REQUIRE(claimed.items.size() == 2);
  std::vector<reconcile::AttemptRecord> records;
  for (const auto& item : claimed.items) {
    auto rec = reconcile::attempt_record_for(item, "adopted");
    rec.http_status = 200;
    rec.request_id = "READ-" + item.sub_mchid;
    rec.decision.state = reconcile::RowState::in_sync;
    rec.decision.remove_from_queue = true;
    rec.live_notify_url = item.desired.notify_url;
    rec.next_read_in = reconcile::Duration::zero();  // the first check due at once
    records.push_back(rec);
  }
  store.record(records, {});
}

reconcile::DriftCheckRecord drifted(const reconcile::DriftCheck& check, const std::string& live) {
  reconcile::DriftCheckRecord rec;
  rec.check = check;
  rec.live_notify_url = live;
  rec.drifted = true;
  rec.http_status = 200;
  rec.request_id = "READ-2";
  rec.next_read_in = 1h;
  return rec;
}

}  // namespace

TEST_CASE("an adoption is recorded in sync with its audit row and the live value", "[pg][live]") {
  TestDatabase db;
  prepare(db, "repair");
  pg::ReconcileStore store(database_config(db), "host-a:1");
  adopt_both(store);
  CHECK(text(db,
             "SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync' AND live_read_at IS NOT NULL "
             "AND live_notify_url = desired_notify_url AND applied_notify_url = desired_notify_url") == "2");
  CHECK(text(db,
             "SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'adopted' AND request_id LIKE 'READ-%' "
             "AND claim_token IS NOT NULL") == "2");
  CHECK(text(db, "SELECT count(*) FROM callbackd.pending_work") == "0");
}

TEST_CASE("drift checks are claimed once, fenced by their read token, and repaired", "[pg][live]") {
  TestDatabase db;
  prepare(db, "repair");
  pg::ReconcileStore a(database_config(db), "host-a:1");
  pg::ReconcileStore b(database_config(db), "host-b:1");
  adopt_both(a);
  const auto first = a.claim_drift_checks({{"acme", 10}}, 60s);
  REQUIRE(first.size() == 2);
  // Claimed: nobody else gets them while the lease lasts.
  CHECK(b.claim_drift_checks({{"acme", 10}}, 60s).empty());
  // The lease lapses (a crashed reader): the rows fall due again and get new tokens.
  exec(db, "UPDATE callbackd.sub_merchant_state SET next_read_at = now() - interval '1 second'");
  const auto second = b.claim_drift_checks({{"acme", 10}}, 60s);
  REQUIRE(second.size() == 2);
  CHECK(second[0].read_token != first[0].read_token);
  // The first reader's record is fenced out: nothing changes, nothing is audited.
  a.record_drift_checks({drifted(first[0], "https://elsewhere.example.net/")});
  CHECK(text(db, "SELECT count(*) FROM callbackd.sync_status WHERE state = 'drifted'") == "0");
  CHECK(text(db, "SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'drift_detected'") == "0");
  // The current reader's drift: drifted with its reason and audit row, and queued for repair.
  const auto& check = second[0];
  b.record_drift_checks({drifted(check, "https://elsewhere.example.net/")});
  CHECK(text(db,
             "SELECT state || ' ' || last_error_code || ' ' || live_notify_url FROM callbackd.sync_status "
             "WHERE mchid = '" +
                 check.sub_mchid + "'") == "drifted DRIFT_DETECTED https://elsewhere.example.net/");
  CHECK(text(db, "SELECT notify_url || ' ' || request_id FROM callbackd.audit_log WHERE outcome = 'drift_detected'") ==
        "https://elsewhere.example.net/ READ-2");
  CHECK(text(db, "SELECT resync::text FROM callbackd.pending_work WHERE mchid = '" + check.sub_mchid + "'") == "true");
  // A repeated record (its commit was in doubt) changes nothing more.
  b.record_drift_checks({drifted(check, "https://elsewhere.example.net/")});
  CHECK(text(db, "SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'drift_detected'") == "1");
  // The repair entry is claimed and judged like any resync: sent although the values match.
  const auto repair = b.claim_due("acme", 10, 60s);
  REQUIRE(repair.items.size() == 1);
  CHECK(repair.items[0].resync);
  REQUIRE(repair.items[0].recorded);
  CHECK(repair.items[0].recorded->state == reconcile::RowState::drifted);
}

TEST_CASE("drift under drift_policy report queues nothing and a row with a queued change is not checked",
          "[pg][live]") {
  TestDatabase db;
  prepare(db, "report");
  pg::ReconcileStore store(database_config(db), "host-a:1");
  adopt_both(store);
  // A change queued for 1900000101 (in flight, say): its drift check waits for it.
  exec(db, "UPDATE callbackd.desired_callbacks SET notify_url = 'https://example.com/new' WHERE mchid = '1900000101'");
  const auto checks = store.claim_drift_checks({{"acme", 10}}, 60s);
  REQUIRE(checks.size() == 1);
  CHECK(checks[0].sub_mchid == "1900000100");
  store.record_drift_checks({drifted(checks[0], "")});  // nothing set any more
  CHECK(text(db, "SELECT state FROM callbackd.sync_status WHERE mchid = '1900000100'") == "drifted");
  CHECK(text(db, "SELECT count(*) FROM callbackd.pending_work WHERE mchid = '1900000100'") == "0");
  CHECK(text(db, "SELECT last_error_message FROM callbackd.sync_status WHERE mchid = '1900000100'") ==
        "WeChat Pay holds notify_url none, not the applied 'https://example.com/cb/100'");
}
