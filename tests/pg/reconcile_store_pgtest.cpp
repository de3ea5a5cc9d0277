// The reconcile store against a real PostgreSQL: claims never overlap between instances, a
// lapsed lease is re-claimable and fences the stale claimer, a change made while a row is in
// flight is never lost, a batch is one statement and one transaction, the listener wakes up.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include <pqxx/pqxx>

#include "core/reconcile/row_decision.h"
#include "core/reconcile/work_verdict.h"
#include "pg/migrator.h"
#include "pg/reconcile_store.h"
#include "pg/statements.h"
#include "pg/test_database.h"

using namespace std::chrono_literals;
using callbackd::test::database_config;
using callbackd::test::TestDatabase;
namespace pg = callbackd::pg;
namespace reconcile = callbackd::reconcile;
using callbackd::wechatpay::OutcomeKind;

namespace {

void exec(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec(sql);
  tx.commit();
}

pqxx::result query(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  return tx.exec(sql);
}

long long scalar(const TestDatabase& db, const std::string& sql) { return query(db, sql)[0][0].as<long long>(); }

std::string text(const TestDatabase& db, const std::string& sql) {
  auto r = query(db, sql);
  return r.empty() || r[0][0].is_null() ? "<null>" : r[0][0].as<std::string>();
}

void add_tenant(const TestDatabase& db, const std::string& tenant_id, const std::string& mode = "apply") {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
      "wechatpay_key_path, mode) VALUES ($1, '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', "
      "'k.pem', 'PUB_KEY_ID_0112', 'p.pem', $2)",
      tenant_id, mode);
  tx.commit();
}

// `count` desired rows 1900000100, 1900000101, ... of `tenant_id`.
void add_rows(const TestDatabase& db, const std::string& tenant_id, int count, int first = 100) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) "
      "SELECT (1900000000 + g)::text, $1, 'https://example.com/cb/' || g, true FROM generate_series($2::int, $3::int) g",
      tenant_id, first, first + count - 1);
  tx.commit();
}

std::string state_of(const TestDatabase& db, const std::string& mchid) {
  return text(db, "SELECT state FROM callbackd.sync_status WHERE mchid = '" + mchid + "'");
}

// What the engine records after an attempt with `outcome`, decided by the real pure function.
callbackd::reconcile::AttemptRecord record_for(const callbackd::reconcile::WorkItem& item, OutcomeKind outcome,
                                               const std::string& error_code = "") {
  reconcile::AttemptResult attempt;
  attempt.outcome = outcome;
  attempt.prior_failures = item.attempts;
  reconcile::RowPolicy policy;
  policy.retry.initial_backoff = 30s;
  policy.retry.max_backoff = 60s;
  // Long enough that a rate-limited row is still "due later" when the test looks, on a busy
  // machine too (the default 1 s had passed by then under load).
  policy.rate_limited_delay = 30s;
  callbackd::reconcile::AttemptRecord r =
      callbackd::reconcile::attempt_record_for(item, callbackd::wechatpay::outcome_name(outcome));
  r.error_code = error_code;
  if (!error_code.empty()) r.error_message = error_code + " from the test";
  if (outcome == OutcomeKind::applied) {
    r.http_status = 200;
    r.update_time = "2015-05-20T13:29:35.120+08:00";
  } else if (outcome == OutcomeKind::rejected) {
    r.http_status = 400;
  } else if (outcome == OutcomeKind::transient) {
    r.http_status = 503;
  } else if (outcome == OutcomeKind::rate_limited) {
    r.http_status = 429;
  }
  if (outcome != OutcomeKind::invalid) r.latency_ms = 12;
  r.decision = reconcile::decide_after_attempt(attempt, policy, reconcile::Instant{}, 0.5);
  return r;
}

const callbackd::reconcile::WorkItem& item_of(const std::vector<callbackd::reconcile::WorkItem>& items,
                                              const std::string& mchid) {
  auto it = std::find_if(items.begin(), items.end(),
                         [&](const callbackd::reconcile::WorkItem& i) { return i.sub_mchid == mchid; });
  REQUIRE(it != items.end());
  return *it;
}

}  // namespace

TEST_CASE("two instances claiming one tenant at once never get the same sub-merchant", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_rows(db, "acme", 300);
  std::vector<std::string> claimed[2];
  std::atomic<int> ready{0};
  auto worker = [&](int n) {
    pg::ReconcileStore store(database_config(db), "host-" + std::to_string(n) + ":1");
    ready++;
    while (ready < 2) std::this_thread::yield();
    for (;;) {
      auto r = store.claim_due("acme", 7, 60s);
      if (r.items.empty()) break;
      for (const auto& i : r.items) claimed[n].push_back(i.sub_mchid);
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  std::set<std::string> all(claimed[0].begin(), claimed[0].end());
  for (const auto& m : claimed[1]) CHECK(all.insert(m).second);  // never claimed twice
  CHECK(all.size() == 300);
  CHECK(claimed[0].size() + claimed[1].size() == 300);
  // Every entry carries its own token and the instance that claimed it.
  CHECK(scalar(db, "SELECT count(DISTINCT claim_token) FROM callbackd.pending_work") == 300);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work WHERE claimed_by IN ('host-0:1', 'host-1:1')") == 300);
}

TEST_CASE("one claim for several tenants honours each tenant's limit, lapsed leases and the requests' order",
          "[pg][store]") {
  TestDatabase db;
  for (const char* t : {"acme", "beta", "gamma", "idle"}) add_tenant(db, t);
  add_rows(db, "acme", 5, 100);   // 100..104
  add_rows(db, "beta", 3, 200);   // 200..202
  add_rows(db, "gamma", 2, 300);  // 300..301
  // beta: 200 leased by another instance (not claimable), 201 leased but lapsed (claimable).
  exec(db,
       "UPDATE callbackd.pending_work SET claimed_by = 'host-x:9', claim_token = nextval('callbackd.claim_token_seq'), "
       "lease_until = now() + interval '20 seconds' WHERE mchid = '1900000200'");
  exec(db,
       "UPDATE callbackd.pending_work SET claimed_by = 'host-x:9', claim_token = nextval('callbackd.claim_token_seq'), "
       "lease_until = now() - interval '1 second' WHERE mchid = '1900000201'");
  // acme: due in order 104, 103, ... so that the limit keeps the earliest due.
  exec(db,
       "UPDATE callbackd.pending_work SET due_at = now() - (mchid::bigint - 1900000090) * interval '1 minute' "
       "WHERE tenant_id = 'acme'");
  // gamma: 301 due later.
  exec(db, "UPDATE callbackd.pending_work SET due_at = now() + interval '30 seconds' WHERE mchid = '1900000301'");
  pg::ReconcileStore store(database_config(db), "host-a:1");

  const auto before = store.statements_executed();
  auto r = store.claim_due({{"gamma", 10}, {"idle", 10}, {"acme", 2}, {"beta", 10}}, 60s);
  CHECK(store.statements_executed() - before == 1);  // one statement for all tenants
  REQUIRE(r.size() == 4);
  CHECK(r[0].tenant_id == "gamma");
  CHECK(r[1].tenant_id == "idle");
  CHECK(r[2].tenant_id == "acme");
  CHECK(r[3].tenant_id == "beta");

  REQUIRE(r[0].items.size() == 1);
  CHECK(r[0].items[0].sub_mchid == "1900000300");
  REQUIRE(r[0].next_due_in);
  CHECK(*r[0].next_due_in > 25s);

  CHECK(r[1].items.empty());
  CHECK_FALSE(r[1].next_due_in);

  REQUIRE(r[2].items.size() == 2);  // the limit; earliest due first
  CHECK(r[2].items[0].sub_mchid == "1900000104");
  CHECK(r[2].items[1].sub_mchid == "1900000103");
  CHECK_FALSE(r[2].next_due_in);  // the rest is due now, not later

  std::set<std::string> beta;
  for (const auto& i : r[3].items) {
    CHECK(i.tenant_id == "beta");
    beta.insert(i.sub_mchid);
  }
  CHECK(beta == std::set<std::string>{"1900000201", "1900000202"});  // the lapsed lease is taken, the live one not
  REQUIRE(r[3].next_due_in);
  CHECK(*r[3].next_due_in <= 20s);
  CHECK(*r[3].next_due_in > 15s);

  // Every claimed entry is stamped with its own token, this instance and the lease.
  CHECK(scalar(db,
               "SELECT count(DISTINCT claim_token) FROM callbackd.pending_work WHERE claimed_by = 'host-a:1' "
               "AND lease_until > now() + interval '50 seconds'") == 5);
  for (const auto& result : r)
    for (const auto& i : result.items)
      CHECK(text(db, "SELECT claim_token::text FROM callbackd.pending_work WHERE mchid = '" + i.sub_mchid + "'") ==
            std::to_string(i.claim_token));

  CHECK(store.claim_due(std::vector<callbackd::reconcile::ClaimRequest>{}, 60s).empty());
  auto limit0 = store.claim_due({{"acme", 0}}, 60s);
  REQUIRE(limit0.size() == 1);
  CHECK(limit0[0].items.empty());
}

TEST_CASE("two instances claiming many tenants at once never get the same sub-merchant", "[pg][store]") {
  TestDatabase db;
  const std::vector<std::string> tenants{"t0", "t1", "t2", "t3", "t4"};
  for (std::size_t t = 0; t < tenants.size(); ++t) {
    add_tenant(db, tenants[t]);
    add_rows(db, tenants[t], 60, 100 + static_cast<int>(t) * 100);
  }
  // Catch2 v2's assertions are not thread-safe: the workers only collect, the main thread checks.
  std::vector<std::string> claimed[2];
  int over_limit[2] = {0, 0};
  int wrong_tenant[2] = {0, 0};
  std::atomic<int> ready{0};
  auto worker = [&](int n) {
    pg::ReconcileStore store(database_config(db), "host-" + std::to_string(n) + ":1");
    std::vector<callbackd::reconcile::ClaimRequest> requests;
    for (std::size_t t = 0; t < tenants.size(); ++t) requests.push_back({tenants[t], 3 + static_cast<int>(t)});
    ready++;
    while (ready < 2) std::this_thread::yield();
    for (;;) {
      std::size_t got = 0;
      const auto results = store.claim_due(requests, 60s);
      for (std::size_t t = 0; t < results.size(); ++t) {
        if (results[t].items.size() > static_cast<std::size_t>(requests[t].limit)) ++over_limit[n];
        for (const auto& i : results[t].items) {
          if (i.tenant_id != requests[t].tenant_id) ++wrong_tenant[n];
          claimed[n].push_back(i.sub_mchid);
          ++got;
        }
      }
      if (got == 0) break;
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  for (int n : {0, 1}) {
    CHECK(over_limit[n] == 0);
    CHECK(wrong_tenant[n] == 0);
  }
  std::set<std::string> all(claimed[0].begin(), claimed[0].end());
  CHECK(all.size() == claimed[0].size());
  for (const auto& m : claimed[1]) CHECK(all.insert(m).second);  // never claimed twice
  CHECK(all.size() == 300);
  CHECK(scalar(db, "SELECT count(DISTINCT claim_token) FROM callbackd.pending_work") == 300);
}

TEST_CASE("claim_due returns what sending needs and when the next entry becomes claimable", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_tenant(db, "other");
  add_rows(db, "acme", 3);
  add_rows(db, "other", 1, 900);
  exec(db, "UPDATE callbackd.desired_callbacks SET switch = NULL, notify_url = NULL WHERE mchid = '1900000102'");
  exec(db, "UPDATE callbackd.pending_work SET due_at = now() + interval '30 seconds' WHERE mchid = '1900000101'");
  pg::ReconcileStore store(database_config(db), "host-a:1");

  auto r = store.claim_due("acme", 10, 60s);
  REQUIRE(r.items.size() == 2);  // 101 is due later; "other" is another tenant
  const auto& plain = item_of(r.items, "1900000100");
  CHECK(plain.tenant_id == "acme");
  CHECK(plain.claim_token > 0);
  CHECK(plain.notify_url == std::optional<std::string>("https://example.com/cb/100"));
  CHECK(plain.desired.push_switch == std::optional<bool>(true));
  CHECK_FALSE(plain.recorded);
  CHECK_FALSE(plain.resync);
  const auto& nulls = item_of(r.items, "1900000102");
  CHECK_FALSE(nulls.notify_url);
  CHECK(nulls.desired.notify_url.empty());
  CHECK_FALSE(nulls.desired.push_switch);
  CHECK(plain.claim_token != nulls.claim_token);
  REQUIRE(r.next_due_in);
  CHECK(*r.next_due_in > 25s);
  CHECK(*r.next_due_in <= 30s);

  // Nothing claimable now; the earliest is the entry due later, or a lease held by another.
  exec(db, "UPDATE callbackd.pending_work SET lease_until = now() + interval '5 seconds' WHERE mchid = '1900000100'");
  auto again = store.claim_due("acme", 10, 60s);
  CHECK(again.items.empty());
  REQUIRE(again.next_due_in);
  CHECK(*again.next_due_in <= 5s);
  CHECK(*again.next_due_in > 1s);

  // release(): claimable again at once.
  store.release({plain.claim_token, nulls.claim_token});
  auto released = store.claim_due("acme", 10, 60s);
  CHECK(released.items.size() == 2);
}

TEST_CASE("a lapsed lease is re-claimable and the stale claimer's record is audited but fenced", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_rows(db, "acme", 1);
  pg::ReconcileStore a(database_config(db), "host-a:1");
  pg::ReconcileStore b(database_config(db), "host-b:2");

  auto first = a.claim_due("acme", 10, 60s);
  REQUIRE(first.items.size() == 1);
  CHECK(b.claim_due("acme", 10, 60s).items.empty());  // leased by a

  exec(db, "UPDATE callbackd.pending_work SET lease_until = now() - interval '1 second'");  // a's lease lapsed
  auto second = b.claim_due("acme", 10, 60s);
  REQUIRE(second.items.size() == 1);
  CHECK(second.items[0].sub_mchid == first.items[0].sub_mchid);
  CHECK(second.items[0].claim_token != first.items[0].claim_token);

  // a finally hears back: its attempt happened (audit row), but b owns the row now.
  a.record({record_for(first.items[0], OutcomeKind::rejected, "PARAM_ERROR")});
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log WHERE instance = 'host-a:1' AND outcome = 'rejected'") ==
        1);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.sub_merchant_state") == 0);
  CHECK(text(db, "SELECT claimed_by FROM callbackd.pending_work") == "host-b:2");

  b.record({record_for(second.items[0], OutcomeKind::applied)});
  CHECK(state_of(db, "1900000100") == "in_sync");
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log") == 2);
}

TEST_CASE("a desired change while a row is in flight is not lost", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_rows(db, "acme", 1);
  pg::ReconcileStore store(database_config(db), "host-a:1");
  auto claimed = store.claim_due("acme", 10, 60s);
  REQUIRE(claimed.items.size() == 1);
  const auto old_revision = claimed.items[0].desired.revision;

  exec(db, "UPDATE callbackd.desired_callbacks SET notify_url = 'https://example.com/new'");  // while in flight
  const long long new_revision = scalar(db, "SELECT revision FROM callbackd.desired_callbacks");
  REQUIRE(new_revision > old_revision);

  store.record({record_for(claimed.items[0], OutcomeKind::applied)});
  // The old revision's success is audited; the entry stays queued, due, with the new revision.
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied' AND desired_revision = " +
                       std::to_string(old_revision)) == 1);
  auto entry = query(db, "SELECT revision, claim_token IS NULL, due_at <= now() FROM callbackd.pending_work");
  REQUIRE(entry.size() == 1);
  CHECK(entry[0][0].as<long long>() == new_revision);
  CHECK(entry[0][1].as<bool>());
  CHECK(entry[0][2].as<bool>());
  CHECK(state_of(db, "1900000100") == "pending");

  // The next claim sends the new values, and settles the row.
  auto next = store.claim_due("acme", 10, 60s);
  REQUIRE(next.items.size() == 1);
  CHECK(next.items[0].notify_url == std::optional<std::string>("https://example.com/new"));
  CHECK(next.items[0].desired.revision == new_revision);
  store.record({record_for(next.items[0], OutcomeKind::applied)});
  CHECK(state_of(db, "1900000100") == "in_sync");
  CHECK(text(db, "SELECT applied_notify_url FROM callbackd.sync_status") == "https://example.com/new");
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work") == 0);
}

TEST_CASE("record() writes a mixed batch in one statement, each row in its state with one audit row", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_rows(db, "acme", 5);
  pg::ReconcileStore store(database_config(db), "host-a:1");
  auto claimed = store.claim_due("acme", 10, 60s);
  REQUIRE(claimed.items.size() == 5);

  std::vector<callbackd::reconcile::AttemptRecord> batch = {
      record_for(item_of(claimed.items, "1900000100"), OutcomeKind::applied),
      record_for(item_of(claimed.items, "1900000101"), OutcomeKind::rejected, "PARAM_ERROR"),
      record_for(item_of(claimed.items, "1900000102"), OutcomeKind::transient, "HTTP_503"),
      record_for(item_of(claimed.items, "1900000103"), OutcomeKind::invalid, "INVALID_DESIRED"),
      record_for(item_of(claimed.items, "1900000104"), OutcomeKind::rate_limited, "FREQUENCY_LIMITED"),
  };
  const auto before = store.statements_executed();
  store.record(batch, {{"acme", "tenant_error", "SIGN_ERROR", "signature rejected"}});
  CHECK(store.statements_executed() - before == 1);

  CHECK(state_of(db, "1900000100") == "in_sync");
  CHECK(state_of(db, "1900000101") == "failed");
  CHECK(state_of(db, "1900000102") == "retrying");
  CHECK(state_of(db, "1900000103") == "invalid");
  CHECK(state_of(db, "1900000104") == "pending");  // a 429 is not the row's failure

  auto applied = query(db,
                       "SELECT applied_notify_url, applied_switch, update_time, last_error_code, attempts, "
                       "last_http_status FROM callbackd.sync_status WHERE mchid = '1900000100'")[0];
  CHECK(applied[0].as<std::string>() == "https://example.com/cb/100");
  CHECK(applied[1].as<bool>());
  CHECK(applied[2].as<std::string>() == "2015-05-20T13:29:35.120+08:00");
  CHECK(applied[3].is_null());
  CHECK(applied[4].as<int>() == 1);
  CHECK(applied[5].as<int>() == 200);
  CHECK(text(db,
             "SELECT update_time_parsed = '2015-05-20T05:29:35.120Z'::timestamptz FROM "
             "callbackd.sub_merchant_state WHERE mchid = '1900000100'") == "t");
  CHECK(
      text(db,
           "SELECT last_error_code || ' ' || last_http_status FROM callbackd.sync_status WHERE mchid = '1900000101'") ==
      "PARAM_ERROR 400");
  CHECK(text(db,
             "SELECT next_attempt_at > now() + interval '10 seconds' FROM callbackd.sync_status "
             "WHERE mchid = '1900000102'") == "t");
  CHECK(text(db, "SELECT last_http_status IS NULL FROM callbackd.sync_status WHERE mchid = '1900000103'") == "t");

  // One audit row per attempt, with the contract columns and what the auditor needs.
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log WHERE mchid IS NOT NULL") == 5);
  CHECK(scalar(db, "SELECT count(DISTINCT mchid) FROM callbackd.audit_log") == 5);
  CHECK(scalar(db,
               "SELECT count(*) FROM callbackd.audit_log WHERE mchid IS NULL AND outcome = 'tenant_error' "
               "AND error_code = 'SIGN_ERROR'") == 1);
  CHECK(scalar(db,
               "SELECT count(*) FROM callbackd.audit_log WHERE instance = 'host-a:1' AND "
               "(mchid IS NULL OR desired_revision IS NOT NULL)") == 6);
  CHECK(scalar(db, "SELECT count(DISTINCT transaction_id) FROM callbackd.audit_log") == 1);  // one transaction
  CHECK(text(db,
             "SELECT latency_ms IS NULL AND http_status IS NULL FROM callbackd.audit_log "
             "WHERE mchid = '1900000103'") == "t");

  // The queue: settled rows gone; the retrying and the rate-limited row due later, unclaimed.
  auto queue =
      query(db, "SELECT mchid, claim_token IS NULL, due_at > now() FROM callbackd.pending_work ORDER BY mchid");
  REQUIRE(queue.size() == 2);
  CHECK(queue[0][0].as<std::string>() == "1900000102");
  CHECK(queue[1][0].as<std::string>() == "1900000104");
  for (const auto& row : queue) {
    CHECK(row[1].as<bool>());
    CHECK(row[2].as<bool>());
  }

  // A failed row is parked until its desired row changes: a touch re-queues it.
  exec(db, "UPDATE callbackd.desired_callbacks SET notify_url = notify_url WHERE mchid = '1900000101'");
  CHECK(state_of(db, "1900000101") == "pending");
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work WHERE mchid = '1900000101'") == 1);
}

TEST_CASE("record() is all or nothing: one bad record leaves no audit row and no state at all", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_rows(db, "acme", 3);
  // Stands in for anything that can fail inside the batch (a constraint, a full disk).
  exec(db, "ALTER TABLE callbackd.sub_merchant_state ADD CONSTRAINT test_refuse CHECK (mchid <> '1900000102')");
  pg::ReconcileStore store(database_config(db), "host-a:1");
  auto claimed = store.claim_due("acme", 10, 60s);
  REQUIRE(claimed.items.size() == 3);
  std::vector<callbackd::reconcile::AttemptRecord> batch;
  for (const auto& item : claimed.items) batch.push_back(record_for(item, OutcomeKind::applied));
  CHECK_THROWS_AS(store.record(batch), callbackd::DatabaseError);
  CHECK_THROWS_WITH(store.record(batch), Catch::Contains("recording attempts") && Catch::Contains("test_refuse"));
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.sub_merchant_state") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work WHERE claim_token IS NOT NULL") == 3);
  CHECK(store.connected());  // a failed statement is not a lost connection
}

TEST_CASE("record() repeated after an unknown outcome writes nothing twice, and a weird update_time is kept verbatim",
          "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_rows(db, "acme", 2);
  pg::ReconcileStore store(database_config(db), "host-a:1");
  auto claimed = store.claim_due("acme", 10, 60s);
  REQUIRE(claimed.items.size() == 2);
  auto odd = record_for(item_of(claimed.items, "1900000100"), OutcomeKind::applied);
  odd.update_time = "2015-13-45T99:99:99+08:00 \xff'); DROP TABLE x; --";
  auto fine = record_for(item_of(claimed.items, "1900000101"), OutcomeKind::applied);
  store.record({odd, fine});
  store.record({odd, fine});
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log") == 2);
  CHECK(state_of(db, "1900000100") == "in_sync");
  CHECK(text(db,
             "SELECT update_time_parsed IS NULL AND update_time LIKE '2015-13-45%' FROM "
             "callbackd.sub_merchant_state WHERE mchid = '1900000100'") == "t");

  // The same sub-merchant twice in one batch: both audited, the last decides.
  add_rows(db, "acme", 1, 200);
  auto c = store.claim_due("acme", 10, 60s);
  REQUIRE(c.items.size() == 1);
  auto failed = record_for(c.items[0], OutcomeKind::transient, "TIMEOUT");
  auto applied = record_for(c.items[0], OutcomeKind::applied);
  failed.claim_token = 0;  // an attempt without a claim is audited but changes nothing
  store.record({failed, applied});
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log WHERE mchid = '1900000200'") == 2);
  CHECK(state_of(db, "1900000200") == "in_sync");
}

TEST_CASE("tenant pauses are stored with a probe time and resumed", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_tenant(db, "beta");
  add_tenant(db, "watch", "observe");
  add_rows(db, "acme", 2);
  add_rows(db, "beta", 3, 300);
  add_rows(db, "watch", 4, 400);
  pg::ReconcileStore store(database_config(db), "host-a:1");
  CHECK(store.tenants().size() == 3);
  CHECK(store.tenants()[2].mode == callbackd::TenantMode::observe);
  CHECK(store.pending_for_sending_tenants() == 5);

  store.pause_tenant("acme", "SIGN_ERROR", "401 SIGN_ERROR: signature invalid", 60s);
  store.pause_tenant("ghost", "SIGN_ERROR", "a deleted tenant", 60s);  // no row, no error
  auto pauses = store.tenant_pauses();
  REQUIRE(pauses.size() == 1);
  CHECK(pauses["acme"].error_code == "SIGN_ERROR");
  CHECK(pauses["acme"].reason == "401 SIGN_ERROR: signature invalid");
  CHECK(pauses["acme"].probe_in > 55s);
  CHECK(pauses["acme"].probe_in <= 60s);
  CHECK(state_of(db, "1900000100") == "paused");
  CHECK(store.pending_for_sending_tenants() == 3);

  // A failed probe re-pauses: the pause keeps its start.
  const std::string since = text(db, "SELECT paused_at FROM callbackd.tenant_state");
  store.pause_tenant("acme", "SIGN_ERROR", "still broken", 0ms);
  CHECK(text(db, "SELECT paused_at FROM callbackd.tenant_state") == since);
  CHECK(store.tenant_pauses()["acme"].probe_in == 0ms);

  store.resume_tenant("acme");
  CHECK(store.tenant_pauses().empty());
  CHECK(state_of(db, "1900000100") == "pending");
  CHECK(store.pending_for_sending_tenants() == 5);
}

TEST_CASE("queue_resync queues in-sync rows of sending tenants, marked resync, never parked ones", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_tenant(db, "watch", "observe");
  add_rows(db, "acme", 3);
  add_rows(db, "watch", 1, 400);
  pg::ReconcileStore store(database_config(db), "host-a:1");
  auto claimed = store.claim_due("acme", 10, 60s);
  REQUIRE(claimed.items.size() == 3);
  store.record({record_for(item_of(claimed.items, "1900000100"), OutcomeKind::applied),
                record_for(item_of(claimed.items, "1900000101"), OutcomeKind::applied),
                record_for(item_of(claimed.items, "1900000102"), OutcomeKind::rejected, "PARAM_ERROR")});
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work WHERE tenant_id = 'acme'") == 0);

  CHECK(store.queue_resync() == 2);  // the failed row stays parked; observe tenants are not sent to
  auto resync = store.claim_due("acme", 10, 60s);
  REQUIRE(resync.items.size() == 2);
  for (const auto& item : resync.items) {
    CHECK(item.resync);
    REQUIRE(item.recorded);
    CHECK(item.recorded->state == reconcile::RowState::in_sync);
    // The diff alone holds it as in sync; the resync flag makes the engine send it.
    auto v = reconcile::judge_work_item(item.sub_mchid, item.notify_url, item.desired, item.recorded, std::nullopt,
                                        item.resync);
    CHECK(v.action == reconcile::WorkAction::send);
    CHECK(v.reason_name() == "resync");
  }
  store.release({resync.items[0].claim_token, resync.items[1].claim_token});

  // A real change clears the flag: the row is then sent for its change.
  exec(db,
       "UPDATE callbackd.desired_callbacks SET notify_url = 'https://example.com/changed' WHERE mchid = '1900000100'");
  CHECK(text(db, "SELECT resync FROM callbackd.pending_work WHERE mchid = '1900000100'") == "f");
  CHECK(text(db, "SELECT resync FROM callbackd.pending_work WHERE mchid = '1900000101'") == "t");

  // drop(): an entry that needs no attempt is settled without an audit row.
  auto again = store.claim_due("acme", 10, 60s);
  REQUIRE(again.items.size() == 2);
  const long long audited = scalar(db, "SELECT count(*) FROM callbackd.audit_log");
  store.drop({item_of(again.items, "1900000101")});
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.pending_work WHERE mchid = '1900000101'") == 0);
  CHECK(scalar(db, "SELECT count(*) FROM callbackd.audit_log") == audited);
}

TEST_CASE("the listener hears a desired change within its wait and reports a lost connection", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  pg::Listener listener(database_config(db));
  CHECK(listener.wait(50ms).empty());  // nothing yet: returns after the timeout

  std::thread writer([&] {
    std::this_thread::sleep_for(100ms);
    add_rows(db, "acme", 2);
  });
  const auto start = std::chrono::steady_clock::now();
  auto got = listener.wait(5s);
  writer.join();
  CHECK(std::chrono::steady_clock::now() - start < 4s);  // woke on the NOTIFY, not the timeout
  REQUIRE(got.size() == 1);                              // one per tenant per transaction
  CHECK(got[0].channel == "callbackd_desired");
  CHECK(got[0].tenant_id == "acme");

  exec(db, "UPDATE callbackd.tenants SET mode = 'observe'");
  auto tenant_change = listener.wait(5s);
  REQUIRE(tenant_change.size() == 1);
  CHECK(tenant_change[0].channel == "callbackd_tenants");

  exec(db,
       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'callbackd-listen' "
       "AND datname = current_database()");
  CHECK_THROWS_AS(listener.wait(2s), callbackd::DatabaseError);
  CHECK_THROWS_AS(listener.wait(10ms), callbackd::DatabaseError);  // stays lost: the caller makes a new one
}

TEST_CASE("a store whose connection is lost says so and reconnects", "[pg][store]") {
  TestDatabase db;
  add_tenant(db, "acme");
  add_rows(db, "acme", 1);
  pg::ReconcileStore store(database_config(db), "host-a:1");
  CHECK(store.connected());
  exec(db,
       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'callbackd' "
       "AND datname = current_database()");
  CHECK_THROWS_WITH(store.claim_due("acme", 10, 60s),
                    Catch::Contains("claiming due entries") && Catch::Contains("host="));
  CHECK_FALSE(store.connected());
  CHECK_THROWS_AS(store.pending_for_sending_tenants(), callbackd::DatabaseError);
  store.reconnect();
  CHECK(store.connected());
  CHECK(store.claim_due("acme", 10, 60s).items.size() == 1);
}

TEST_CASE("a store on a database without the schema fails at construction, naming the fix", "[pg][store]") {
  TestDatabase db(TestDatabase::Schema::empty);
  CHECK_THROWS_WITH(pg::ReconcileStore(database_config(db), "host-a:1"),
                    Catch::Contains("cannot prepare statements") && Catch::Contains("callbackd migrate"));
}

TEST_CASE("every statement of daemon/pg/sql prepares against the schema the migrations build", "[pg][store]") {
  TestDatabase db;
  const auto& statements = pg::embedded_statements();
  // The 13 of the store (the heartbeat's eight became one, sql/heartbeat.sql; due_tenants), queue_ages, the
  // tenants read (3, with platform certificates), the inspector's own (4), the progress table's
  // (progress_counts), the change budget's admission (2), `approve`'s call (1), the platform
  // certificates' writes (3), the status page's (9, sql/status_*.sql), the learned rates' (2)
  // the live state's (2 for drift checks, 1 for `plan --refresh`; migrations/0011) and the row
  // counts' fold (migrations/0014); a file added or lost changes this on purpose.
  CHECK(statements.size() == 43);
  pqxx::connection c(db.conninfo());
  for (const auto& s : statements) {
    INFO("daemon/pg/sql/" << s.name << ".sql");
    CHECK_FALSE(s.text.empty());
    c.prepare(s.name, s.text);
    CHECK_NOTHROW(c.prepare_now(s.name));  // parsed and planned by the server: a typo fails here
  }
  CHECK(pg::statement_text("claim_due").find("FOR UPDATE SKIP LOCKED") != std::string::npos);
}

TEST_CASE("learned rates are written, read back with their age, moved and forgotten", "[pg][store]") {
  using callbackd::reconcile::LearnedScope;
  TestDatabase db;
  pg::ReconcileStore store(database_config(db), "host-a:1");
  CHECK(store.learned_rates().empty());
  store.save_learned_rates({{LearnedScope::tenant, "acme", 120.5, {}},
                            {LearnedScope::source_address, "", 60.0, {}},
                            {LearnedScope::source_address, "127.0.0.2", 5.0, {}}});
  exec(db, "UPDATE callbackd.learned_rates SET learned_at = now() - interval '30 minutes' WHERE key = 'acme'");
  auto rows = store.learned_rates();
  REQUIRE(rows.size() == 3);
  std::map<std::string, callbackd::reconcile::LearnedRate> by_key;
  for (auto& r : rows) by_key[r.key] = r;
  CHECK(by_key["acme"].scope == LearnedScope::tenant);
  CHECK(by_key["acme"].rate_per_minute == std::optional<double>(120.5));
  CHECK(by_key["acme"].age >= std::chrono::minutes{29});
  CHECK(by_key[""].scope == LearnedScope::source_address);
  CHECK(by_key[""].age < std::chrono::minutes{1});
  // Moved (learned_at now again) and forgotten, in one statement.
  const auto before = store.statements_executed();
  store.save_learned_rates(
      {{LearnedScope::tenant, "acme", 200.0, {}}, {LearnedScope::source_address, "", std::nullopt, {}}});
  CHECK(store.statements_executed() == before + 1);
  rows = store.learned_rates();
  REQUIRE(rows.size() == 2);
  for (const auto& r : rows) {
    CHECK(r.key != "");
    if (r.key == "acme") CHECK(r.rate_per_minute == std::optional<double>(200));
    if (r.key == "acme") CHECK(r.age < std::chrono::minutes{1});
  }
}

TEST_CASE("an idle poll over 1,000 tenants is one statement", "[pg][store]") {
  TestDatabase db;
  exec(db,
       "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
       "wechatpay_key_path) SELECT 't' || g, '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', 'k.pem', "
       "'PUB_KEY_ID_0112', 'p.pem' FROM generate_series(1, 1000) g");
  add_rows(db, "t500", 1);  // one tenant has one entry due
  std::vector<callbackd::reconcile::ClaimRequest> requests;
  for (int t = 1; t <= 1000; ++t) requests.push_back({"t" + std::to_string(t), 10});
  pg::ReconcileStore store(database_config(db), "host-a:1");
  const auto before = store.statements_executed();
  const auto results = store.claim_due(requests, 60s);
  CHECK(store.statements_executed() - before == 1);
  REQUIRE(results.size() == 1000);
  std::size_t claimed = 0;
  for (std::size_t t = 0; t < results.size(); ++t) {
    CHECK(results[t].tenant_id == requests[t].tenant_id);
    claimed += results[t].items.size();
  }
  CHECK(claimed == 1);
  CHECK(results[499].items.size() == 1);
}

TEST_CASE("due_tenants names the tenants a claim could take an entry of now, and no other", "[pg][store]") {
  TestDatabase db;
  for (const char* t : {"due", "later", "mine", "lapsed", "theirs", "empty"}) add_tenant(db, t);
  add_rows(db, "due", 2, 100);
  add_rows(db, "later", 1, 200);
  add_rows(db, "mine", 1, 300);
  add_rows(db, "lapsed", 1, 400);
  add_rows(db, "theirs", 1, 500);
  exec(db, "UPDATE callbackd.pending_work SET due_at = now() + interval '30 seconds' WHERE tenant_id = 'later'");
  pg::ReconcileStore store(database_config(db), "host-a:1");
  // Our own live claim: nothing more to take there.
  REQUIRE(store.claim_due("mine", 10, 60s).items.size() == 1);
  exec(db,
       "UPDATE callbackd.pending_work SET claimed_by = 'host-a:1', claim_token = nextval('callbackd.claim_token_seq'), "
       "lease_until = now() - interval '1 second' WHERE tenant_id = 'lapsed'");
  // Another instance's live claim: named, since this instance may hold the tenant's lease now.
  exec(db,
       "UPDATE callbackd.pending_work SET claimed_by = 'host-x:9', claim_token = nextval('callbackd.claim_token_seq'), "
       "lease_until = now() + interval '20 seconds' WHERE tenant_id = 'theirs'");
  const auto before = store.statements_executed();
  CHECK(store.due_tenants() == std::vector<std::string>{"due", "lapsed", "theirs"});
  CHECK(store.statements_executed() - before == 1);
}
