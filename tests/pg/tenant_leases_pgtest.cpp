// The heartbeat of several instances (migrations/0003, 0007: one lease per instance): one statement in the steady
// state, releasing and acquiring in that same statement, and never one tenant held by two instances when they race
// (pg/sql/heartbeat.sql).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <atomic>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "core/reconcile/ownership_policy.h"
#include "pg/migrator.h"
#include "pg/reconcile_store.h"
#include "pg/test_database.h"

using namespace std::chrono_literals;
using callbackd::test::TestDatabase;
namespace pg = callbackd::pg;
namespace reconcile = callbackd::reconcile;

namespace {

// Tenants at `rate_per_minute` (60 by default: one share each, migrations/0013, so the tests
// of whole tenants see one lease per tenant).
void add_tenants(const TestDatabase& db, const std::vector<std::string>& ids, int rate_per_minute = 60) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  for (const auto& id : ids)
    tx.exec_params0(
        "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
        "wechatpay_key_path, rate_per_minute) VALUES ($1, '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', "
        "'k.pem', 'PUB_KEY_ID_0112', 'p.pem', $2)",
        id, rate_per_minute);
  tx.commit();
}

// One audit row of `tenant_id`: a request that reached WeChat Pay (it has a latency) or not,
// made by `instance` (none: written by hand).
void audit(const TestDatabase& db, const std::string& tenant_id, bool reached,
           std::optional<std::string> instance = std::nullopt) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.audit_log (tenant_id, mchid, outcome, latency_ms, instance) VALUES ($1, '1900000100', "
      "'applied', $2, $3)",
      tenant_id, reached ? std::optional<int>{40} : std::nullopt, instance);
  tx.commit();
}

std::string owner(const TestDatabase& db, const std::string& tenant_id) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  auto r = tx.exec_params("SELECT instance_id FROM callbackd.tenant_leases WHERE tenant_id = $1", tenant_id);
  return r.empty() ? "<none>" : r[0][0].as<std::string>();
}

std::set<std::string> ids(const reconcile::Ownership& o) {
  std::set<std::string> s;
  for (const auto& t : o.owned) s.insert(t.tenant_id);
  return s;
}

pg::ReconcileStore store_of(const TestDatabase& db, const std::string& instance) {
  callbackd::DatabaseConfig config;
  config.url = db.conninfo();
  return pg::ReconcileStore(config, instance);
}

}  // namespace

TEST_CASE("a steady-state heartbeat is one statement", "[pg][store]") {
  TestDatabase db;
  add_tenants(db, {"a", "b", "c"});
  auto store = store_of(db, "host:me");
  auto first = store.heartbeat(20s, {}, 1s);
  REQUIRE(ids(first) == std::set<std::string>{"a", "b", "c"});

  // Nothing to acquire, nothing released, no other instance on this machine (the margin asks
  // for the takeover candidates, in the same statement).
  for (const auto margin : {std::optional<std::chrono::milliseconds>{1s}, std::optional<std::chrono::milliseconds>{}}) {
    const auto before = store.statements_executed();
    auto o = store.heartbeat(20s, {}, margin);
    CHECK(store.statements_executed() - before == 1);
    CHECK(ids(o) == std::set<std::string>{"a", "b", "c"});
    CHECK(std::none_of(o.owned.begin(), o.owned.end(), [](const auto& t) { return t.acquired_now; }));
    CHECK(o.live_instances == 1);
    CHECK(o.fair_share == 3);
    CHECK(o.dead_instances.empty());
  }
  // Renewed: the fencing tokens of the first acquisition are kept.
  auto again = store.heartbeat(20s, {});
  for (std::size_t i = 0; i < again.owned.size(); ++i)
    CHECK(again.owned[i].fencing_token == first.owned[i].fencing_token);
}

TEST_CASE("one heartbeat statement releases a tenant and acquires others with their recent sends", "[pg][store]") {
  TestDatabase db;
  add_tenants(db, {"a"});
  auto store = store_of(db, "host:me");
  REQUIRE(ids(store.heartbeat(20s, {})) == std::set<std::string>{"a"});

  add_tenants(db, {"b", "c"});
  // Another instance sent for b: twice to WeChat Pay, once not (no latency: not counted).
  audit(db, "b", true);
  std::this_thread::sleep_for(50ms);
  audit(db, "b", false);
  audit(db, "b", true);

  const auto before = store.statements_executed();
  auto o = store.heartbeat(20s, {{"a", 0}});
  CHECK(store.statements_executed() - before == 1);
  // a is given up and not taken back by the same heartbeat; b and c are acquired up to the
  // fair share (3 tenants, 1 instance), in tenant order.
  REQUIRE(o.owned.size() == 2);
  CHECK(o.owned[0].tenant_id == "b");
  CHECK(o.owned[1].tenant_id == "c");
  CHECK(o.owned[0].acquired_now);
  CHECK(o.owned[1].acquired_now);
  CHECK(owner(db, "a") == "<none>");
  CHECK(owner(db, "b") == "host:me");
  CHECK(o.fair_share == 3);
  // Oldest first, each an age by the database clock.
  REQUIRE(o.owned[0].recent_sends.size() == 2);
  CHECK(o.owned[0].recent_sends[0].age >= o.owned[0].recent_sends[1].age + 40ms);
  CHECK(o.owned[0].recent_sends[0].age < 10s);
  CHECK(o.owned[0].recent_sends[0].audit_id < o.owned[0].recent_sends[1].audit_id);
  CHECK(o.owned[1].recent_sends.empty());

  // The next heartbeat takes a back: it is free and within the share.
  auto next = store.heartbeat(20s, {});
  CHECK(ids(next) == std::set<std::string>{"a", "b", "c"});
}

TEST_CASE("a heartbeat acquires only up to the fair share and never a tenant another live instance holds",
          "[pg][store]") {
  TestDatabase db;
  add_tenants(db, {"a", "b", "c", "d"});
  auto one = store_of(db, "host:one");
  auto two = store_of(db, "host:two");
  REQUIRE(ids(one.heartbeat(20s, {})) == std::set<std::string>{"a", "b", "c", "d"});
  auto o2 = two.heartbeat(20s, {});
  CHECK(o2.owned.empty());
  CHECK(o2.live_instances == 2);
  CHECK(o2.fair_share == 2);
  // One hands two over (as the lease keeper would), the other takes them on its next heartbeat.
  auto o1 = one.heartbeat(20s, {{"c", 0}, {"d", 0}});
  CHECK(ids(o1) == std::set<std::string>{"a", "b"});
  CHECK(o1.fair_share == 2);
  o2 = two.heartbeat(20s, {});
  CHECK(ids(o2) == std::set<std::string>{"c", "d"});
  CHECK(owner(db, "c") == "host:two");
}

TEST_CASE("instances heartbeating at once never hold one tenant both", "[pg][store]") {
  TestDatabase db;
  std::vector<std::string> tenants;
  for (int i = 0; i < 60; ++i) tenants.push_back("t" + std::to_string(100 + i));
  add_tenants(db, tenants);
  constexpr int kInstances = 3;
  constexpr int kRounds = 8;
  constexpr int kLongLeaseRounds = 4;
  callbackd::DatabaseConfig config;
  config.url = db.conninfo();
  std::vector<std::unique_ptr<pg::ReconcileStore>> stores;
  for (int i = 0; i < kInstances; ++i)
    stores.push_back(std::make_unique<pg::ReconcileStore>(config, "host:" + std::to_string(i)));

  // Catch2's assertions are not thread-safe: the threads only collect, the checks run here.
  std::array<std::array<reconcile::Ownership, kInstances>, kRounds> seen;
  std::array<std::array<std::string, kInstances>, kRounds> errors;
  for (int round = 0; round < kRounds; ++round) {
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kInstances; ++i)
      threads.emplace_back([&, round, i] {
        ++ready;
        while (ready < kInstances) std::this_thread::yield();
        // Then leases of 1 ms: they lapse at once, so every heartbeat renews lapsed leases of
        // its own while the others acquire them (both in one statement each).
        try {
          seen[round][i] = stores[i]->heartbeat(round < kLongLeaseRounds ? 20s : 1ms, {});
        } catch (const std::exception& e) {
          errors[round][i] = e.what();
        }
      });
    for (auto& t : threads) t.join();
  }
  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    std::set<std::string> held;
    std::size_t total = 0;
    for (int i = 0; i < kInstances; ++i) {
      CHECK(errors[round][i] == "");
      const auto& o = seen[round][i];
      const auto acquired = std::count_if(o.owned.begin(), o.owned.end(), [](const auto& t) { return t.acquired_now; });
      const auto renewed = static_cast<long>(o.owned.size()) - acquired;
      CHECK(acquired <= std::max(0L, o.fair_share - renewed));
      total += o.owned.size();
      for (const auto& t : o.owned) held.insert(t.tenant_id);
    }
    // While no lease lapses, no tenant is held twice, and from the first round on all are held.
    if (round < kLongLeaseRounds) {
      CHECK(held.size() == total);
      CHECK(held.size() == tenants.size());
    }
  }
}

namespace {

std::string scalar(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  auto r = tx.exec1(sql);
  return r[0].is_null() ? "<null>" : r[0].as<std::string>();
}

// Whether a statement of another session waits for a row lock within 5 s.
bool lock_awaited(const TestDatabase& db) {
  for (int i = 0; i < 500; ++i) {
    if (scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") != "0") return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

// `instance` stalls: its lease lapses while its last heartbeat stays recent enough to count it live.
void lapse_lease(const TestDatabase& db, const std::string& instance) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec_params0("UPDATE callbackd.instances SET lease_until = now() - interval '1 second' WHERE instance_id = $1",
                  instance);
  tx.commit();
}

struct Answer {
  reconcile::Ownership ownership;
  std::string error;
  bool waited = false;  // the heartbeat waited for `holder`'s lock before it went on
};

// A heartbeat of `store` run while `holder` holds a row lock it needs: `holder` commits once
// the heartbeat waits for it, so the order of the two is the test's, not the scheduler's.
Answer heartbeat_behind(const TestDatabase& db, pg::ReconcileStore& store, pqxx::work& holder) {
  Answer a;
  std::thread heartbeat([&] {
    try {
      a.ownership = store.heartbeat(20s, {});
    } catch (const std::exception& e) {
      a.error = e.what();
    }
  });
  a.waited = lock_awaited(db);
  holder.commit();
  heartbeat.join();
  return a;
}

}  // namespace

TEST_CASE("an idle heartbeat renews the instance's lease and writes no tenant lease row", "[pg][store]") {
  TestDatabase db;
  add_tenants(db, {"a", "b", "c"});
  auto store = store_of(db, "host:me");
  REQUIRE(ids(store.heartbeat(20s, {})) == std::set<std::string>{"a", "b", "c"});
  // A row version's xmin and place: any UPDATE of the row changes both.
  const std::string rows =
      "SELECT string_agg(tenant_id || xmin::text || ctid::text, ',' ORDER BY tenant_id) "
      "FROM callbackd.tenant_leases";
  const std::string lease =
      "SELECT extract(epoch FROM lease_until)::double precision FROM callbackd.instances WHERE instance_id = 'host:me'";
  const std::string before = scalar(db, rows);
  const std::string lease_before = scalar(db, lease);
  std::this_thread::sleep_for(20ms);
  for (int i = 0; i < 3; ++i) CHECK(ids(store.heartbeat(20s, {})) == std::set<std::string>{"a", "b", "c"});
  CHECK(scalar(db, rows) == before);
  CHECK(std::stod(scalar(db, lease)) > std::stod(lease_before));
}

TEST_CASE("tenants of an instance whose lease lapsed move after its epoch changed, and its next renewal says so",
          "[pg][store]") {
  TestDatabase db;
  add_tenants(db, {"a", "b"});
  auto one = store_of(db, "host:one");
  auto two = store_of(db, "host:two");
  const auto first = one.heartbeat(20s, {});
  REQUIRE(ids(first) == std::set<std::string>{"a", "b"});
  lapse_lease(db, "host:one");
  const auto taken = two.heartbeat(20s, {});
  CHECK(taken.live_instances == 2);
  REQUIRE(ids(taken) == std::set<std::string>{"a"});  // its fair share of 2
  CHECK(taken.owned[0].acquired_now);
  CHECK(owner(db, "a") == "host:two");
  // `one` comes back: the epoch it gets is not the one it knew, and the snapshot of this very
  // heartbeat already shows what it lost.
  const auto back = one.heartbeat(20s, {});
  CHECK_FALSE(reconcile::renewal_confirms_holding(first.epoch, back.epoch, true));
  CHECK(ids(back) == std::set<std::string>{"b"});
  // From then on its renewals confirm again; the taker's epoch never changed.
  CHECK(reconcile::renewal_confirms_holding(back.epoch, one.heartbeat(20s, {}).epoch, true));
  CHECK(reconcile::renewal_confirms_holding(taken.epoch, two.heartbeat(20s, {}).epoch, true));
}

TEST_CASE("a takeover re-checks the owner's lease under its row lock: a renewal that came first keeps the tenants",
          "[pg][store]") {
  TestDatabase db;
  add_tenants(db, {"a", "b"});
  auto one = store_of(db, "host:one");
  auto two = store_of(db, "host:two");
  REQUIRE(ids(one.heartbeat(20s, {})) == std::set<std::string>{"a", "b"});
  pqxx::connection c(db.conninfo());
  lapse_lease(db, "host:one");
  // `one`'s late renewal holds its row's lock (as its heartbeat's upsert does) while `two`,
  // whose snapshot sees the lapsed lease, tries to fence it.
  pqxx::work renewal(c);
  renewal.exec0(
      "UPDATE callbackd.instances SET lease_until = now() + interval '20 seconds' "
      "WHERE instance_id = 'host:one'");
  const Answer taken = heartbeat_behind(db, two, renewal);
  CHECK(taken.waited);
  CHECK(taken.error == "");
  CHECK(taken.ownership.owned.empty());
  CHECK(owner(db, "a") == "host:one");
  CHECK(owner(db, "b") == "host:one");
}

TEST_CASE("a renewal that waited for a takeover's fence returns the new epoch", "[pg][store]") {
  TestDatabase db;
  add_tenants(db, {"a"});
  auto one = store_of(db, "host:one");
  const auto first = one.heartbeat(20s, {});
  REQUIRE(ids(first) == std::set<std::string>{"a"});
  // Another instance's `fenced` step, not yet committed, holds `one`'s row.
  pqxx::connection c(db.conninfo());
  pqxx::work fence(c);
  fence.exec0(
      "UPDATE callbackd.instances SET epoch = nextval('callbackd.tenant_lease_seq') WHERE instance_id = 'host:one'");
  const Answer renewed = heartbeat_behind(db, one, fence);
  CHECK(renewed.waited);
  CHECK(renewed.error == "");
  CHECK_FALSE(reconcile::renewal_confirms_holding(first.epoch, renewed.ownership.epoch, true));
}

TEST_CASE("0007 carries per-tenant leases over as their instances' leases", "[pg][migrate]") {
  TestDatabase db(TestDatabase::Schema::empty);
  const auto& all = callbackd::pg::embedded_migrations();
  const std::vector<callbackd::pg::Migration> before(
      all.begin(), std::find_if(all.begin(), all.end(), [](const auto& m) { return m.version >= 7; }));
  callbackd::DatabaseConfig config;
  config.url = db.conninfo();
  callbackd::pg::migrate(config, before);
  add_tenants(db, {"a", "b", "c"});
  {
    // As binaries before 0007 left them: `host:one` live with two leases, `host:gone` forgotten
    // (no instance row) with a lapsed one.
    pqxx::connection c(db.conninfo());
    pqxx::work tx(c);
    tx.exec0("INSERT INTO callbackd.instances (instance_id) VALUES ('host:one')");
    tx.exec0(
        "INSERT INTO callbackd.tenant_leases (tenant_id, instance_id, lease_until) VALUES "
        "('a', 'host:one', now() + interval '10 seconds'), ('b', 'host:one', now() + interval '20 seconds'), "
        "('c', 'host:gone', now() - interval '1 minute')");
    tx.commit();
  }
  callbackd::pg::migrate(config, all);
  // The longest of an instance's leases becomes its lease: it keeps every tenant it held.
  CHECK(scalar(db,
               "SELECT lease_until > now() + interval '15 seconds' FROM callbackd.instances "
               "WHERE instance_id = 'host:one'") == "t");
  CHECK(scalar(db,
               "SELECT lease_until < now() AND heartbeat_at = '-infinity' FROM callbackd.instances "
               "WHERE instance_id = 'host:gone'") == "t");
  // A new instance (one of two live: a share of 2) takes only the tenant whose lease lapsed.
  auto two = store_of(db, "host:two");
  const auto o = two.heartbeat(20s, {});
  CHECK(ids(o) == std::set<std::string>{"c"});
  CHECK(owner(db, "a") == "host:one");
  CHECK(owner(db, "b") == "host:one");
}

namespace {

// (share, rate) of every share of `tenant_id` in `o`.
std::map<int, int> shares_of(const reconcile::Ownership& o, const std::string& tenant_id) {
  std::map<int, int> out;
  for (const auto& t : o.owned)
    if (t.tenant_id == tenant_id) out[t.share] = t.rate_per_minute;
  return out;
}

}  // namespace

TEST_CASE("rate shares: one big tenant is cut into shares the instances lease, balance and take over",
          "[pg][store][shares]") {
  TestDatabase db;
  // 170 a minute: floor(170 / 40) = 4 shares of 42, the first 170 mod 4 = 2 of them one more.
  add_tenants(db, {"big"}, 170);
  add_tenants(db, {"small"}, 79);  // below 80: one share, one instance at a time, as before
  auto one = store_of(db, "host:one");
  auto two = store_of(db, "host:two");

  // Alone, one instance holds every share: the tenant's whole rate.
  const auto first = one.heartbeat(20s, {});
  CHECK(first.fair_share == 5);
  CHECK(shares_of(first, "big") == std::map<int, int>{{0, 43}, {1, 43}, {2, 42}, {3, 42}});
  CHECK(shares_of(first, "small") == std::map<int, int>{{0, 79}});
  audit(db, "big", true, "host:one");
  audit(db, "big", true, "host:one");
  audit(db, "big", true, "host:elsewhere");

  // Expecting the 5 shares it holds, the next heartbeat lists nothing (the idle steady state);
  // once an operator deleted one, the count differs and it lists the 4 left.
  const auto quiet = one.heartbeat(20s, {}, std::nullopt, 5);
  CHECK_FALSE(quiet.listed);
  CHECK(quiet.shares_held == 5);
  CHECK(quiet.owned.empty());
  {
    pqxx::connection c(db.conninfo());
    pqxx::work tx(c);
    tx.exec0("DELETE FROM callbackd.tenant_leases WHERE tenant_id = 'big' AND share = 3");
    tx.commit();
  }
  const auto noticed = one.heartbeat(20s, {}, std::nullopt, 5);
  CHECK(noticed.listed);
  CHECK(shares_of(noticed, "big") == std::map<int, int>{{0, 43}, {1, 43}, {2, 42}, {3, 42}});  // 3 taken back
  CHECK(std::count_if(noticed.owned.begin(), noticed.owned.end(), [](const auto& t) { return t.acquired_now; }) == 1);

  // A second instance: its fair share is ceil(5 / 2) = 3, but every share is held.
  const auto second = two.heartbeat(20s, {});
  CHECK(second.live_instances == 2);
  CHECK(second.fair_share == 3);
  CHECK(second.owned.empty());

  // The first gives two shares of the big tenant up (the lease keeper's hand-over); the second
  // takes them, counting in its windows what every other instance sent for it (the share was
  // free: who carried it is not known).
  one.heartbeat(20s, {{"big", 2}, {"big", 3}});
  const auto joined = two.heartbeat(20s, {});
  CHECK(shares_of(joined, "big") == std::map<int, int>{{2, 42}, {3, 42}});
  for (const auto& t : joined.owned) {
    CHECK(t.acquired_now);
    CHECK(!t.previous);
    CHECK(t.recent_sends.size() == 3);
  }
  CHECK(shares_of(one.heartbeat(20s, {}), "big") == std::map<int, int>{{0, 43}, {1, 43}});

  // The first instance's lease lapses: the second takes shares of it up to its fair share
  // (the first still counts as live until its heartbeat is a lease old), the one taken naming
  // it and counting only its requests (the second's own are in its pacer already).
  one.heartbeat(1ms, {});
  std::this_thread::sleep_for(20ms);
  const auto taken = two.heartbeat(20s, {});
  CHECK(shares_of(taken, "big") == std::map<int, int>{{0, 43}, {2, 42}, {3, 42}});
  for (const auto& t : taken.owned) {
    if (!t.acquired_now) continue;
    CHECK(t.share == 0);
    CHECK(t.previous == std::optional<std::string>{"host:one"});
    CHECK(t.recent_sends.size() == 2);
  }

  // The operator lowers the rate to 80: two shares of 40. The shares beyond the count are
  // still listed, without a rate (the lease keeper gives them up); given up, the next
  // heartbeat takes another lapsed share instead: share 0 of every tenant first.
  {
    pqxx::connection c(db.conninfo());
    pqxx::work tx(c);
    tx.exec0("UPDATE callbackd.tenants SET rate_per_minute = 80 WHERE tenant_id = 'big'");
    tx.commit();
  }
  CHECK(shares_of(two.heartbeat(20s, {}), "big") == std::map<int, int>{{0, 40}, {2, 0}, {3, 0}});
  const auto lowered = two.heartbeat(20s, {{"big", 2}, {"big", 3}});
  CHECK(shares_of(lowered, "big") == std::map<int, int>{{0, 40}});
  CHECK(shares_of(lowered, "small") == std::map<int, int>{{0, 79}});
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  CHECK(tx.exec1("SELECT count(*) FROM callbackd.tenant_leases WHERE tenant_id = 'big'")[0].as<int>() == 2);
}

TEST_CASE("rate shares: the SQL functions cut a rate as core/reconcile/ownership_policy.h does", "[pg][shares]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  const auto rows = tx.exec(
      "SELECT r, s, callbackd.rate_shares(r), callbackd.share_rate(r, s) FROM generate_series(1, 1000) r, "
      "generate_series(0, 7) s WHERE s < callbackd.rate_shares(r)");
  REQUIRE(rows.size() > 1000);
  std::size_t differ = 0;
  for (const auto& row : rows) {
    const int rate = row[0].as<int>();
    const int share = row[1].as<int>();
    if (row[2].as<int>() != reconcile::rate_shares(rate) || row[3].as<int>() != reconcile::share_rate(rate, share))
      ++differ;
  }
  CHECK(differ == 0);
}
