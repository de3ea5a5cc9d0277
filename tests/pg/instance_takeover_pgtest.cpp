// Taking over the tenants of an instance that provably died on this machine (0005): its lease
// (0007: the instance's) is cut to the margin and it no longer counts as live; an instance that is alive, or that ran
// in another boot, keeps its leases until they lapse.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <pqxx/pqxx>
#include <thread>

#include "core/instance_liveness.h"
#include "pg/reconcile_store.h"
#include "pg/test_database.h"
#include "support/process.h"

using namespace std::chrono_literals;
using callbackd::test::TestDatabase;
namespace pg = callbackd::pg;

namespace {

bool holds(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<bool>();
}

// An instance row with a lease of 20 s (migrations/0007) holding `tenant`, as another instance's
// heartbeat leaves them.
void other_instance(const TestDatabase& db, const std::string& id, const std::string& boot_id,
                    const std::string& pid_namespace, long pid, const std::string& tenant) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, "
      "wechatpay_key_id, wechatpay_key_path, rate_per_minute) VALUES ($1, '1900000001', "
      "'5157F09EFDC096DE15EBE81A47057A7232F1B8E1', 'k.pem', 'PUB_KEY_ID_0112', 'p.pem', 60)",
      tenant);
  tx.exec_params0(
      "INSERT INTO callbackd.instances (instance_id, boot_id, pid_namespace, pid, lease_until) "
      "VALUES ($1, $2, $3, $4, now() + interval '20 seconds')",
      id, boot_id, pid_namespace, pid);
  tx.exec_params0("INSERT INTO callbackd.tenant_leases (tenant_id, instance_id) VALUES ($1, $2)", tenant, id);
  tx.commit();
}

}  // namespace

TEST_CASE("a heartbeat takes over the leases of a dead instance on this machine, and only those", "[pg][store]") {
  TestDatabase db;
  const callbackd::ProcessIdentity me = callbackd::this_process();
  REQUIRE(!me.boot_id.empty());
  REQUIRE(!me.pid_namespace.empty());
  // A pid that is gone: a child that has exited and been reaped.
  const auto dead = callbackd::test::spawn_process({"/bin/true"});
  REQUIRE(callbackd::test::wait_exit_status(dead) == 0);
  unlink(dead.output_path.c_str());
  callbackd::test::ScopedChild alive(callbackd::test::spawn_process({"/bin/sleep", "60"}));

  other_instance(db, "host:dead", me.boot_id, me.pid_namespace, dead.pid, "a");
  other_instance(db, "host:alive", me.boot_id, me.pid_namespace, alive.pid(), "b");
  other_instance(db, "elsewhere:dead", "another-boot", me.pid_namespace, dead.pid, "c");

  callbackd::DatabaseConfig config;
  config.url = db.conninfo();
  pg::ReconcileStore store(config, "host:me");

  // Without a margin nothing is taken over: the leases lapse as before.
  auto plain = store.heartbeat(20s, {});
  CHECK(plain.dead_instances.empty());
  CHECK(holds(
      db,
      "SELECT lease_until > now() + interval '15 seconds' FROM callbackd.instances WHERE instance_id = 'host:dead'"));

  auto o = store.heartbeat(20s, {}, 1s);
  REQUIRE(o.dead_instances.size() == 1);
  CHECK(o.dead_instances[0].instance_id == "host:dead");
  CHECK(o.dead_instances[0].pid == dead.pid);
  CHECK(o.dead_instances[0].tenants == 1);
  // The dead one's lease now lapses within the margin; the others keep theirs.
  CHECK(holds(
      db,
      "SELECT lease_until <= now() + interval '1 second' FROM callbackd.instances WHERE instance_id = 'host:dead'"));
  CHECK(holds(
      db,
      "SELECT lease_until > now() + interval '15 seconds' FROM callbackd.instances WHERE instance_id = 'host:alive'"));
  CHECK(holds(
      db,
      "SELECT lease_until > now() + interval '15 seconds' FROM callbackd.instances WHERE instance_id = 'elsewhere:dead'"));
  // It is no longer counted live (its row stays while a lease names it); this instance is
  // recorded with where it runs.
  CHECK(holds(db, "SELECT heartbeat_at = '-infinity' FROM callbackd.instances WHERE instance_id = 'host:dead'"));
  CHECK(o.live_instances == 3);
  CHECK(holds(db, "SELECT boot_id = '" + me.boot_id + "' AND pid_namespace = '" + me.pid_namespace + "' AND pid = " +
                      std::to_string(getpid()) + " FROM callbackd.instances WHERE instance_id = 'host:me'"));
  CHECK(o.owned.empty());  // not before the margin

  std::this_thread::sleep_for(1200ms);
  auto later = store.heartbeat(20s, {}, 1s);
  REQUIRE(later.owned.size() == 1);
  CHECK(later.owned[0].tenant_id == "a");
  CHECK(later.owned[0].acquired_now);
  // Named by no lease any more: the next heartbeat forgets it.
  store.heartbeat(20s, {}, 1s);
  CHECK(holds(db, "SELECT NOT EXISTS (SELECT 1 FROM callbackd.instances WHERE instance_id = 'host:dead')"));
}

TEST_CASE("the heartbeat asks the injected probe, not kill(2), whether an instance died", "[pg][store]") {
  TestDatabase db;
  const callbackd::ProcessIdentity me = callbackd::this_process();
  REQUIRE(!me.boot_id.empty());
  REQUIRE(!me.pid_namespace.empty());
  // Pids that need no process: the probe alone decides.
  other_instance(db, "host:gone", me.boot_id, me.pid_namespace, 424242, "a");
  other_instance(db, "host:running", me.boot_id, me.pid_namespace, 424243, "b");
  callbackd::DatabaseConfig config;
  config.url = db.conninfo();
  std::vector<long> asked;
  pg::ReconcileStore store(config, "host:me", [&](long pid) {
    asked.push_back(pid);
    return pid == 424242 ? callbackd::PidProbe::gone : callbackd::PidProbe::alive;
  });

  auto o = store.heartbeat(20s, {}, 1s);
  CHECK(asked == std::vector<long>{424242, 424243});  // instance_id order
  REQUIRE(o.dead_instances.size() == 1);
  CHECK(o.dead_instances[0].instance_id == "host:gone");
  CHECK(o.dead_instances[0].tenants == 1);
  CHECK(holds(
      db,
      "SELECT lease_until <= now() + interval '1 second' FROM callbackd.instances WHERE instance_id = 'host:gone'"));
  CHECK(holds(
      db,
      "SELECT lease_until > now() + interval '15 seconds' FROM callbackd.instances WHERE instance_id = 'host:running'"));
}
