// The kept row counts (migrations/0014_row_state_counts.sql) on a real database: after every
// kind of write, folded or not, concurrently or not, callbackd.row_state_counts() answers
// exactly what counting sync_status answers in the same snapshot; writers never wait for
// the bookkeeping; and reading the counts reads a handful of rows where counting sync_status
// reads every one.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "core/config.h"
#include "pg/migrator.h"
#include "pg/test_database.h"

using callbackd::test::TestDatabase;

namespace {

using Counts = std::map<std::pair<std::string, std::string>, long long>;

Counts counts_of(pqxx::transaction_base& tx, const std::string& sql) {
  Counts out;
  for (const auto& r : tx.exec(sql)) out[{r[0].as<std::string>(), r[1].as<std::string>()}] = r[2].as<long long>();
  return out;
}

const char* const kKept = "SELECT tenant_id, state, n FROM callbackd.row_state_counts()";
const char* const kCounted = "SELECT tenant_id, state, count(*) FROM callbackd.sync_status GROUP BY 1, 2";

// Both answers, from one snapshot.
std::pair<Counts, Counts> both(const TestDatabase& db) {
  pqxx::connection c(db.conninfo());
  pqxx::transaction<pqxx::isolation_level::repeatable_read> tx(c);
  auto kept = counts_of(tx, kKept);
  auto counted = counts_of(tx, kCounted);
  return {kept, counted};
}

void run_sql(const TestDatabase& db, const std::string& sql) { callbackd::test::exec_sql(db, sql); }
// Committed: a fold is a write.
long long scalar(const TestDatabase& db, const std::string& sql) { return callbackd::test::query_number(db, sql); }

int fold(const TestDatabase& db, int max_rows) {
  return static_cast<int>(scalar(db, "SELECT callbackd.fold_row_state_changes(" + std::to_string(max_rows) + ")"));
}

void add_tenant(const TestDatabase& db, const std::string& tenant) {
  run_sql(db,
          "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
          "wechatpay_key_path) VALUES ('" +
              tenant +
              "', '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', 'k.pem', 'PUB_KEY_ID_0112', "
              "'p.pem')");
}

// What the daemon records for `mchid` at its current desired revision.
std::string record(const std::string& mchid, const std::string& state) {
  return "INSERT INTO callbackd.sub_merchant_state (mchid, tenant_id, revision, state) "
         "SELECT mchid, tenant_id, revision, '" +
         state + "' FROM callbackd.desired_callbacks WHERE mchid = '" + mchid +
         "' ON CONFLICT (mchid) DO UPDATE SET revision = EXCLUDED.revision, state = EXCLUDED.state";
}

// The same numbers before a fold, after a partial one and after every change was folded.
void check_exact(const TestDatabase& db, const std::string& after) {
  INFO("after: " << after);
  auto [kept, counted] = both(db);
  CHECK(kept == counted);
  fold(db, 2);
  std::tie(kept, counted) = both(db);
  CHECK(kept == counted);
  while (fold(db, 1000) > 0) {}
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.row_state_changes") == 0);
  std::tie(kept, counted) = both(db);
  CHECK(kept == counted);
  // Folded, the totals alone are the counts before pauses.
  CHECK(scalar(db,
               "SELECT count(*) FROM ((SELECT tenant_id, state, n FROM callbackd.row_state_totals) EXCEPT "
               "(SELECT tenant_id, state, count(*) FROM callbackd.desired_row_states GROUP BY 1, 2)) x") == 0);
}

}  // namespace

TEST_CASE("row counts: the same as counting sync_status after every kind of write, folded or not", "[pg][row-counts]") {
  TestDatabase db;
  add_tenant(db, "a");
  add_tenant(db, "b");
  check_exact(db, "nothing");
  run_sql(db,
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
          "SELECT 'm' || i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, 'https://n.example.com/' || i "
          "FROM generate_series(1, 40) i");
  check_exact(db, "a bulk load");
  for (const auto& [mchid, state] : std::vector<std::pair<std::string, std::string>>{{"m1", "in_sync"},
                                                                                     {"m2", "in_sync"},
                                                                                     {"m3", "failed"},
                                                                                     {"m4", "retrying"},
                                                                                     {"m5", "invalid"},
                                                                                     {"m6", "drifted"},
                                                                                     {"m7", "in_sync"},
                                                                                     {"m8", "in_sync"}})
    run_sql(db, record(mchid, state));
  check_exact(db, "recorded states");
  run_sql(db, "UPDATE callbackd.sub_merchant_state SET attempts = attempts + 1, next_attempt_at = now()");
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.row_state_changes") == 0);  // nothing state-deciding
  run_sql(db, record("m3", "in_sync"));
  run_sql(db, "UPDATE callbackd.desired_callbacks SET switch = true WHERE mchid IN ('m1', 'm2')");  // pending again
  check_exact(db, "a re-sent row and two changed desired rows");
  run_sql(db, "UPDATE callbackd.pending_work SET held_at = now(), held_reason = 'budget' WHERE mchid IN ('m9', 'm10')");
  check_exact(db, "two held changes");
  run_sql(db, "UPDATE callbackd.pending_work SET held_at = NULL, held_reason = NULL WHERE mchid = 'm9'");
  run_sql(db, "DELETE FROM callbackd.pending_work WHERE mchid = 'm10'");
  check_exact(db, "one approved, one dropped");
  run_sql(db, "UPDATE callbackd.desired_callbacks SET tenant_id = 'a' WHERE mchid = 'm7'");
  run_sql(db, "UPDATE callbackd.desired_callbacks SET mchid = 'm8-renamed' WHERE mchid = 'm8'");
  check_exact(db, "a row moved to another tenant and one renamed");
  run_sql(db, "DELETE FROM callbackd.desired_callbacks WHERE mchid IN ('m4', 'm11')");
  run_sql(db, "DELETE FROM callbackd.sub_merchant_state WHERE mchid = 'm5'");
  check_exact(db, "deleted rows and a deleted state");
  run_sql(db, "UPDATE callbackd.tenants SET mode = 'paused' WHERE tenant_id = 'a'");
  run_sql(db, "INSERT INTO callbackd.tenant_state (tenant_id, paused_reason) VALUES ('b', 'SIGN_ERROR')");
  check_exact(db, "both tenants paused, one by its mode, one by the daemon");
  run_sql(db, "UPDATE callbackd.tenants SET mode = 'apply'");
  run_sql(db, "DELETE FROM callbackd.tenant_state");
  check_exact(db, "resumed");
  // No transition table for a TRUNCATE: every row is recounted.
  run_sql(db, "TRUNCATE callbackd.sub_merchant_state");
  check_exact(db, "TRUNCATE of the states");
  run_sql(db, "TRUNCATE callbackd.desired_callbacks CASCADE");
  check_exact(db, "TRUNCATE of the desired rows");
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.row_states") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.row_state_totals") == 0);
}

TEST_CASE("row counts: concurrent writers and folders leave them exact in every snapshot", "[pg][row-counts]") {
  TestDatabase db;
  add_tenant(db, "a");
  add_tenant(db, "b");
  run_sql(db,
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
          "SELECT 'm' || i, 'a', 'https://n.example.com/' || i FROM generate_series(1, 30) i");
  std::atomic<bool> writing{true};
  std::atomic<int> writes{0};
  std::atomic<int> readings{0};
  std::vector<std::string> failures;
  std::mutex failures_lock;
  auto failed = [&](const std::string& what) {
    std::lock_guard lock(failures_lock);
    failures.push_back(what);
  };
  // Writers as operators and instances are: several statements per transaction, the same
  // sub-merchants from every side, in any order.
  auto writer = [&](unsigned seed) {
    std::mt19937 rng(seed);
    pqxx::connection c(db.conninfo());
    for (int i = 0; i < 150; ++i) {
      try {
        pqxx::work tx(c);
        for (int k = 0; k < 3; ++k) {
          const std::string m = "m" + std::to_string(1 + rng() % 30);
          switch (rng() % 7) {
            case 0:
              tx.exec0("UPDATE callbackd.desired_callbacks SET switch = NOT coalesce(switch, false) WHERE mchid = '" +
                       m + "'");
              break;
            case 1:
              tx.exec0(record(m, "in_sync"));
              break;
            case 2:
              tx.exec0(record(m, rng() % 2 ? "failed" : "retrying"));
              break;
            case 3:
              tx.exec0(
                  "UPDATE callbackd.pending_work SET held_at = CASE WHEN held_at IS NULL THEN now() END WHERE mchid = '" +
                  m + "'");
              break;
            case 4:
              tx.exec0("DELETE FROM callbackd.desired_callbacks WHERE mchid = '" + m + "'");
              break;
            case 5:
              tx.exec0(
                  "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) VALUES ('" + m +
                  "', 'b', 'https://x.example.com/') ON CONFLICT (mchid) DO UPDATE SET tenant_id = CASE WHEN callbackd.desired_callbacks.tenant_id = 'a' THEN 'b' ELSE 'a' END");
              break;
            default:
              tx.exec0("DELETE FROM callbackd.pending_work WHERE mchid = '" + m + "'");
              break;
          }
        }
        tx.commit();
        ++writes;
      } catch (const pqxx::sql_error& e) {
        // Writers of the same rows deadlock among themselves now and then, as they would
        // without any counts; the loser is rolled back whole. Anything else is a failure.
        if (e.sqlstate() != "40P01") failed(std::string("writer: ") + e.what());
      }
    }
  };
  auto folder = [&] {
    pqxx::connection c(db.conninfo());
    while (writing) {
      pqxx::work tx(c);
      tx.exec1("SELECT callbackd.fold_row_state_changes(7)");
      tx.commit();
    }
  };
  auto reader = [&] {
    while (writing) {
      const auto [kept, counted] = both(db);
      if (kept != counted) failed("a snapshot in which the kept counts differ from sync_status's");
      ++readings;
    }
  };
  std::vector<std::thread> threads;
  for (unsigned seed : {1u, 2u, 3u}) threads.emplace_back(writer, seed);
  threads.emplace_back(folder);
  threads.emplace_back(folder);
  threads.emplace_back(reader);
  for (int i = 0; i < 3; ++i) threads[i].join();
  writing = false;
  for (std::size_t i = 3; i < threads.size(); ++i) threads[i].join();
  for (const auto& f : failures) FAIL_CHECK(f);
  CHECK(writes > 100);
  CHECK(readings > 0);
  check_exact(db, "the concurrent writes");
}

TEST_CASE("row counts: an open writer's transaction holds up neither a fold nor a reader", "[pg][row-counts]") {
  TestDatabase db;
  add_tenant(db, "a");
  run_sql(db,
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
          "SELECT 'm' || i, 'a', 'https://n.example.com/' || i FROM generate_series(1, 5) i");
  // An operator's session left open after an UPDATE, and an instance's record in flight.
  pqxx::connection oc(db.conninfo());
  pqxx::work operator_tx(oc);
  operator_tx.exec0("UPDATE callbackd.desired_callbacks SET switch = false WHERE mchid = 'm1'");
  pqxx::connection ic(db.conninfo());
  pqxx::work instance_tx(ic);
  instance_tx.exec0(record("m2", "in_sync"));
  {
    pqxx::connection c(db.conninfo());
    pqxx::work tx(c);
    tx.exec0("SET LOCAL lock_timeout = '2s'");
    tx.exec0("SET LOCAL statement_timeout = '5s'");
    CHECK(tx.exec1("SELECT callbackd.fold_row_state_changes(100)")[0].as<int>() == 5);  // the load's
    CHECK(counts_of(tx, kKept) == Counts{{{"a", "pending"}, 5}});
    tx.commit();
  }
  // Another instance records a third row meanwhile: it does not wait for either.
  {
    pqxx::connection c(db.conninfo());
    pqxx::work tx(c);
    tx.exec0("SET LOCAL lock_timeout = '2s'");
    tx.exec0(record("m3", "failed"));
    tx.commit();
  }
  operator_tx.commit();
  instance_tx.commit();
  check_exact(db, "the open transactions committed");
}

TEST_CASE("row counts: reading them reads the unfolded rows, not every row", "[pg][row-counts]") {
  TestDatabase db;
  add_tenant(db, "a");
  run_sql(db,
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
          "SELECT 'm' || i, 'a', 'https://n.example.com/' || i FROM generate_series(1, 20000) i");
  run_sql(db,
          "INSERT INTO callbackd.sub_merchant_state (mchid, tenant_id, revision, state) "
          "SELECT mchid, tenant_id, revision, 'in_sync' FROM callbackd.desired_callbacks");
  while (fold(db, 5000) > 0) {}
  {
    pqxx::connection c(db.conninfo());
    pqxx::nontransaction(c).exec0(
        "VACUUM ANALYZE callbackd.desired_callbacks, callbackd.sub_merchant_state, callbackd.pending_work");
  }
  run_sql(db, "UPDATE callbackd.desired_callbacks SET switch = true WHERE mchid IN ('m1', 'm2', 'm3')");
  // Rows of the three tables a statement read, from this transaction's own statistics.
  auto rows_read = [&](const std::string& sql) {
    pqxx::connection c(db.conninfo());
    pqxx::work tx(c);
    tx.exec(sql);
    return tx
        .exec1(
            "SELECT sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)) FROM pg_stat_xact_user_tables "
            "WHERE schemaname = 'callbackd' AND relname IN ('desired_callbacks', 'sub_merchant_state', "
            "'pending_work')")[0]
        .as<long long>();
  };
  const long long kept = rows_read(kKept);
  const long long counted = rows_read(kCounted);
  INFO("rows read: kept counts " << kept << ", counting sync_status " << counted);
  CHECK(kept <= 3 * 3);     // each unfolded row, once from each table
  CHECK(counted >= 20000);  // the test can fail: the old way reads every row
  {
    pqxx::connection c(db.conninfo());
    pqxx::work tx(c);
    CHECK(counts_of(tx, kKept) == Counts{{{"a", "in_sync"}, 19997}, {{"a", "pending"}, 3}});
  }
  // Past 10,000 unfolded rows (a bulk load not folded yet), a count of every row instead: the
  // same numbers.
  CHECK(scalar(db, "SELECT callbackd.recount_row_states()") == 20000);
  const auto [recounted, counted_again] = both(db);
  CHECK(recounted == counted_again);
}

TEST_CASE("0014 counts the rows already there when it is applied", "[pg][migrate][row-counts]") {
  TestDatabase db(TestDatabase::Schema::empty);
  const auto& all = callbackd::pg::embedded_migrations();
  const std::vector<callbackd::pg::Migration> before(
      all.begin(), std::find_if(all.begin(), all.end(), [](const auto& m) { return m.version >= 14; }));
  callbackd::DatabaseConfig config;
  config.url = db.conninfo();
  callbackd::pg::migrate(config, before);
  add_tenant(db, "a");
  add_tenant(db, "b");
  run_sql(db,
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
          "SELECT 'm' || i, CASE WHEN i < 6 THEN 'a' ELSE 'b' END, 'https://n.example.com/' || i "
          "FROM generate_series(1, 10) i");
  run_sql(db, record("m1", "in_sync"));
  run_sql(db, record("m2", "failed"));
  run_sql(db, record("m6", "invalid"));
  run_sql(db, "UPDATE callbackd.pending_work SET held_at = now() WHERE mchid = 'm7'");
  callbackd::pg::migrate(config, all);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.row_state_changes") == 0);
  const auto [kept, counted] = both(db);
  CHECK(kept == counted);
  CHECK(kept == Counts{{{"a", "in_sync"}, 1},
                       {{"a", "failed"}, 1},
                       {{"a", "pending"}, 3},
                       {{"b", "invalid"}, 1},
                       {{"b", "held"}, 1},
                       {{"b", "pending"}, 3}});
}
