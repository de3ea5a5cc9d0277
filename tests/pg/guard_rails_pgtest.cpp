// Guard rails for mass changes (migrations/0008_guard_rails.sql, issue 18) against a real
// PostgreSQL: the change budget admits exactly its share of a claim and holds the rest (never
// claimed again, shown as `held`), approval releases them and is recorded with the approving
// login, only callbackd_operator may approve, and a change of allowed_notify_hosts queues the
// tenant's rows to be judged again.
#include <catch2/catch.hpp>

#include <set>
#include <thread>

#include <pqxx/pqxx>

#include "core/reconcile/row_decision.h"
#include "pg/approvals.h"
#include "pg/reconcile_store.h"
#include "pg/test_database.h"

using namespace std::chrono_literals;
using callbackd::test::database_config;
using callbackd::test::LoginRole;
using callbackd::test::TestDatabase;
namespace pg = callbackd::pg;
namespace reconcile = callbackd::reconcile;

namespace {

void exec(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::work tx(c);
  tx.exec(sql);
  tx.commit();
}

long long scalar(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<long long>();
}

std::string text(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  const auto r = tx.exec1(sql);
  return r[0].is_null() ? "<null>" : r[0].as<std::string>();
}

// Tenant acme with `rows` sub-merchants 1900000100.. in sync at https://hooks.a.example/cb/N, as
// the daemon would have recorded them, and nothing queued.
void tenant_in_sync(const TestDatabase& db, int rows, const std::string& guard_columns) {
  exec(db.conninfo(),
       "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
       "wechatpay_key_path) VALUES ('acme', '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', 'k.pem', "
       "'PUB_KEY_ID_0112', 'p.pem');"
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) "
       "SELECT (1900000000 + g)::text, 'acme', 'https://hooks.a.example/cb/' || g, true "
       "FROM generate_series(100, " +
           std::to_string(99 + rows) +
           ") g;"
           "INSERT INTO callbackd.sub_merchant_state (mchid, tenant_id, revision, state, applied_notify_url, "
           "applied_switch, applied_revision) SELECT mchid, tenant_id, revision, 'in_sync', notify_url, switch, "
           "revision FROM callbackd.desired_callbacks;"
           "DELETE FROM callbackd.pending_work;" +
           (guard_columns.empty() ? "" : "UPDATE callbackd.tenants SET " + guard_columns + ";"));
}

std::set<std::string> mchids(const std::vector<reconcile::WorkItem>& items) {
  std::set<std::string> out;
  for (const auto& i : items) out.insert(i.sub_mchid);
  return out;
}

}  // namespace

TEST_CASE("the change budget admits its share of a mass change and holds the rest until approved",
          "[pg][guard_rails]") {
  TestDatabase db;
  tenant_in_sync(db, 10, "max_changes_per_hour = 3");
  pg::ReconcileStore store(database_config(db.conninfo()), "i1");
  exec(db.conninfo(), "UPDATE callbackd.desired_callbacks SET notify_url = replace(notify_url, 'hooks.a', 'hooks.b')");

  auto first = store.claim_due("acme", 4, 60s);
  CHECK(first.items.size() == 3);
  CHECK(first.held == 1);
  CHECK(first.started_holding);
  REQUIRE(first.held_moves.size() == 1);
  CHECK(reconcile::held_hosts_summary(first.held_moves) == "hooks.a.example (1) \u2192 hooks.b.example (1)");

  // Holding: every further change is held too, and only once does the tenant start holding.
  auto second = store.claim_due("acme", 10, 60s);
  CHECK(second.items.empty());
  CHECK(second.held == 6);
  CHECK_FALSE(second.started_holding);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'changes_held'") == 1);
  CHECK(text(db, "SELECT error_message FROM callbackd.audit_log WHERE outcome = 'changes_held'")
            .find("3 of max_changes_per_hour 3") != std::string::npos);

  // Held rows: never claimed, not due for the poll, shown as held with the reason.
  CHECK(store.claim_due("acme", 10, 60s).items.empty());
  CHECK(store.due_tenants().empty());
  CHECK(store.pending_for_sending_tenants() == 3);  // the three claimed; held rows do not keep a batch open
  CHECK(scalar(db,
               "SELECT count(*) FROM callbackd.sync_status WHERE state = 'held' "
               "AND last_error_code = 'CHANGE_BUDGET_EXCEEDED' AND last_error_message LIKE '%approve_changes%'") == 7);
  const auto queues = store.queue_ages();
  REQUIRE(queues.size() == 1);
  CHECK(queues[0].held == 7);
  CHECK(queues[0].queued == 10);

  // A retry of an admitted revision is not counted again.
  store.release({first.items[0].claim_token});
  auto retried = store.claim_due("acme", 10, 60s);
  REQUIRE(retried.items.size() == 1);
  CHECK(retried.items[0].sub_mchid == first.items[0].sub_mchid);
  CHECK(retried.held == 0);

  // Approval releases all seven; they are claimed as admitted, not held again.
  LoginRole alice(db, "alice", "callbackd_operator");
  CHECK(pg::approve_changes(database_config(alice.conninfo()), "acme") == 7);
  auto approved = store.claim_due("acme", 10, 60s);
  CHECK(approved.items.size() == 7);
  CHECK(approved.held == 0);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.sync_status WHERE state = 'held'") == 0);
  CHECK(text(db, "SELECT approved_by || ' ' || rows_released FROM callbackd.change_approvals") == alice.name() + " 7");
  CHECK(text(db,
             "SELECT db_user || ': ' || error_message FROM callbackd.audit_log WHERE outcome = "
             "'changes_approved'")
            .find(alice.name() + ": 7 held changes released by " + alice.name()) == 0);

  // The approval covered the whole change: the next change starts a fresh budget.
  exec(db.conninfo(),
       "UPDATE callbackd.desired_callbacks SET notify_url = replace(notify_url, 'hooks.b', 'hooks.c') "
       "WHERE mchid IN ('1900000100', '1900000101')");
  auto next = store.claim_due("acme", 10, 60s);
  CHECK(mchids(next.items) == std::set<std::string>{"1900000100", "1900000101"});
  CHECK(next.held == 0);
}

TEST_CASE("two instances claiming one tenant at once admit exactly its budget between them", "[pg][guard_rails]") {
  TestDatabase db;
  tenant_in_sync(db, 200, "max_changes_per_hour = 50");
  exec(db.conninfo(), "UPDATE callbackd.desired_callbacks SET notify_url = notify_url || '?moved'");
  long long admitted[2] = {0, 0};
  long long held[2] = {0, 0};
  std::vector<std::thread> instances;
  for (int i = 0; i < 2; ++i)
    instances.emplace_back([&, i] {
      pg::ReconcileStore store(database_config(db.conninfo()), "i" + std::to_string(i));
      // Small claims, so that the two interleave many times; until neither finds anything.
      for (int round = 0; round < 200; ++round) {
        const auto r = store.claim_due("acme", 7, 60s);
        admitted[i] += static_cast<long long>(r.items.size());
        held[i] += r.held;
        if (r.items.empty() && r.held == 0) break;
      }
    });
  for (auto& t : instances) t.join();
  CHECK(admitted[0] + admitted[1] == 50);
  CHECK(held[0] + held[1] == 150);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.change_admissions") == 50);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'changes_held'") == 1);
}

TEST_CASE("the change budget leaves first applies, touches and undos alone", "[pg][guard_rails]") {
  TestDatabase db;
  tenant_in_sync(db, 4, "max_changes_per_hour = 0");
  pg::ReconcileStore store(database_config(db.conninfo()), "i1");
  // 1900000100: a touch (same values); 1900000101: a change; 1900000200: a new sub-merchant.
  exec(db.conninfo(),
       "UPDATE callbackd.desired_callbacks SET notify_url = notify_url WHERE mchid = '1900000100';"
       "UPDATE callbackd.desired_callbacks SET switch = false WHERE mchid = '1900000101';"
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
       "VALUES ('1900000200', 'acme', 'https://hooks.z.example/cb');");
  auto claimed = store.claim_due("acme", 10, 60s);
  CHECK(mchids(claimed.items) == std::set<std::string>{"1900000100", "1900000200"});
  CHECK(claimed.held == 1);
  // The undo of docs/sql.md: the held row goes back to its applied values and is no change.
  exec(db.conninfo(),
       "UPDATE callbackd.desired_callbacks d SET notify_url = s.applied_notify_url, switch = s.applied_switch "
       "FROM callbackd.sync_status s WHERE s.mchid = d.mchid AND s.tenant_id = 'acme' AND s.state = 'held'");
  auto undone = store.claim_due("acme", 10, 60s);
  CHECK(mchids(undone.items) == std::set<std::string>{"1900000101"});
  CHECK(undone.held == 0);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.sync_status WHERE state = 'held'") == 0);
}

TEST_CASE("only callbackd_operator may approve held changes, the daemon role may not", "[pg][guard_rails][roles]") {
  TestDatabase db;
  tenant_in_sync(db, 2, "max_changes_per_hour = 0");
  LoginRole daemon(db, "daemon", "callbackd_daemon");
  LoginRole retention(db, "retention", "callbackd_retention");
  LoginRole operator_(db, "operator", "callbackd_operator");

  // The daemon's role can run the budget (claim, admit, hold) ...
  pg::ReconcileStore store(database_config(daemon.conninfo()), "i1");
  exec(db.conninfo(), "UPDATE callbackd.desired_callbacks SET notify_url = notify_url || '?v=2'");
  CHECK(store.claim_due("acme", 10, 60s).held == 2);

  // ... but not approve it, neither through the function nor around it.
  for (const LoginRole* role : {&daemon, &retention}) {
    INFO(role->name());
    CHECK_THROWS_WITH(pg::approve_changes(database_config(role->conninfo()), "acme"),
                      Catch::Contains("permission denied for function approve_changes") &&
                          Catch::Contains("only members of callbackd_operator may approve"));
    CHECK_THROWS_WITH(exec(role->conninfo(),
                           "INSERT INTO callbackd.change_approvals (tenant_id, rows_released) "
                           "VALUES ('acme', 2)"),
                      Catch::Contains("permission denied"));
  }
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.sync_status WHERE state = 'held'") == 2);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.change_approvals") == 0);

  CHECK_THROWS_WITH(pg::approve_changes(database_config(operator_.conninfo()), "nobody"),
                    Catch::Contains("no tenant 'nobody'"));
  CHECK(pg::approve_changes(database_config(operator_.conninfo()), "acme") == 2);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.sync_status WHERE state = 'held'") == 0);
  // Operators read the record; the daemon may read approvals too (status).
  CHECK_NOTHROW(exec(operator_.conninfo(), "SELECT * FROM callbackd.change_approvals, callbackd.change_admissions"));
}

TEST_CASE("changing allowed_notify_hosts queues the tenant's rows to be judged again", "[pg][guard_rails]") {
  TestDatabase db;
  tenant_in_sync(db, 3, "");
  LoginRole operator_(db, "operator", "callbackd_operator");
  pg::ReconcileStore store(database_config(db.conninfo()), "i1");
  CHECK(store.claim_due("acme", 10, 60s).items.empty());

  // An operator's UPDATE (no grant on pending_work) queues all three, each judged with the list.
  exec(operator_.conninfo(),
       "UPDATE callbackd.tenants SET allowed_notify_hosts = '{hooks.b.example}' WHERE tenant_id = 'acme'");
  auto claimed = store.claim_due("acme", 10, 60s);
  REQUIRE(claimed.items.size() == 3);
  REQUIRE(claimed.allowed_hosts);
  CHECK(claimed.allowed_hosts->entries == std::vector<std::string>{"hooks.b.example"});
  store.release({claimed.items[0].claim_token, claimed.items[1].claim_token, claimed.items[2].claim_token});

  // An UPDATE that leaves the list as it was queues nothing new.
  exec(db.conninfo(), "DELETE FROM callbackd.pending_work");
  exec(operator_.conninfo(),
       "UPDATE callbackd.tenants SET rate_per_minute = 500, allowed_notify_hosts = "
       "'{hooks.b.example}' WHERE tenant_id = 'acme'");
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work") == 0);
  // NULL (any host) is a change too.
  exec(operator_.conninfo(), "UPDATE callbackd.tenants SET allowed_notify_hosts = NULL WHERE tenant_id = 'acme'");
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work") == 3);
  CHECK_FALSE(store.claim_due("acme", 10, 60s).allowed_hosts);
}
