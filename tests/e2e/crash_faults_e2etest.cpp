// Fault injection (issue 9), end to end against real PostgreSQL and callbackd-sandbox:
//  - kill -9 of the daemon at 20 random instants, each followed by a restart;
//  - PostgreSQL stopped for 20 s and started again under a running daemon.
// Each asserts what the data looks like afterwards: every row converged, every state change
// has its audit row, and nothing is recorded as applied without a verified 200 for it.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "e2e/e2e_support.h"

using namespace e2e;
using callbackd::test::ScopedChild;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// Where in a daemon's life a kill lands.
enum class Phase { start_up, claiming, sending, recording };

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::start_up:
      return "start-up";
    case Phase::claiming:
      return "claiming";
    case Phase::sending:
      return "sending";
    case Phase::recording:
      return "recording";
  }
  return "?";
}

// Tenants acme, bolt, crow... (callers 1900000001, ...), `rows` rows each at 50 a second.
void add_paced_tenants(Environment& env, int tenants, int rows) {
  const char* names[] = {"acme", "bolt", "crow"};
  for (int i = 0; i < tenants && i < 3; ++i) {
    TenantSpec t(names[i], "190000000" + std::to_string(i + 1));
    t.rate_per_minute = 3000;
    env.add_tenant(t);
    env.add_rows(t.tenant_id, i + 1, rows);
  }
}

// The seed of the kill schedule: CALLBACKD_FAULT_SEED reproduces a failed run.
unsigned fault_seed() {
  if (const char* s = std::getenv("CALLBACKD_FAULT_SEED"); s && *s) return static_cast<unsigned>(std::stoul(s));
  return std::random_device{}();
}

}  // namespace

TEST_CASE("kill -9 at 20 random instants, each followed by a restart: every row converges with a verified audit",
          "[e2e][faults]") {
  const unsigned seed = fault_seed();
  INFO("kill schedule seed " << seed << " (CALLBACKD_FAULT_SEED=" << seed << " repeats it)");
  std::mt19937 prng(seed);
  auto uniform = [&prng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(prng); };

  Environment env;
  // 3 tenants x 1,000 rows at 50 a second each: the 20 kills land while most rows are still
  // to be sent, and the final run sends the rest.
  add_paced_tenants(env, 3, 1000);
  env.start_sandbox();
  // A short request deadline shortens every wait for a killed instance's tenant leases: the
  // restart proves it dead (same boot and PID namespace, pid gone; migrations/0005) and takes
  // its tenants over after request_timeout + 2 s = 3 s, instead of the lease (21 s here).
  DaemonConfigOptions options;
  options.request_timeout = milliseconds{1'000};
  const auto command = env.daemon_command("", options);

  pqxx::connection watch(env.db().conninfo());
  auto audit_rows = [&watch] {
    pqxx::nontransaction tx(watch);
    return tx.exec1("SELECT count(*) FROM callbackd.audit_log")[0].as<long long>();
  };

  // Five kills in each phase, in a random order, each at a random instant within its phase.
  std::vector<Phase> phases;
  for (Phase p : {Phase::start_up, Phase::claiming, Phase::sending, Phase::recording})
    phases.insert(phases.end(), 5, p);
  std::shuffle(phases.begin(), phases.end(), prng);
  std::ostringstream schedule;
  for (std::size_t k = 0; k < phases.size(); ++k) {
    const Phase phase = phases[k];
    INFO("kills so far:\n" << schedule.str());
    ScopedChild daemon(callbackd::test::spawn_process(command));
    const auto spawned = std::chrono::steady_clock::now();
    const long long before = audit_rows();
    // Rows go out only once the instance holds a tenant lease (the killed one's must be taken
    // over first); how long that took, from the exec.
    std::optional<milliseconds> took;
    auto acquired = [&] {
      if (daemon.output().find("event=tenant_acquired") == std::string::npos) return false;
      if (!took) took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - spawned);
      return true;
    };
    // Every phase but start-up lands after the first lease.
    if (phase != Phase::start_up) REQUIRE(wait_until(acquired, seconds{40}));
    std::string instant;
    switch (phase) {
      case Phase::start_up: {
        // Config, schema check, first connections, the first read of the tenants.
        const int ms = uniform(0, 400);
        std::this_thread::sleep_for(milliseconds{ms});
        instant = std::to_string(ms) + " ms after exec";
        break;
      }
      case Phase::claiming: {
        // Right after the lease: the first claims of the tenant are being read.
        const int ms = uniform(0, 40);
        std::this_thread::sleep_for(milliseconds{ms});
        instant = std::to_string(ms) + " ms after the first tenant_acquired";
        break;
      }
      case Phase::sending: {
        const int more = uniform(20, 300);
        INFO(output_tail(daemon.output()));
        REQUIRE(wait_until([&] { return audit_rows() >= before + more; }, seconds{40}));
        instant = "after " + std::to_string(more) + " more audit rows";
        break;
      }
      case Phase::recording: {
        // A batch is written when its first record is 250 ms old (engine/record_batcher.cpp):
        // while sending, the next write starts within about 250 ms after one committed.
        const int more = uniform(1, 100);
        INFO(output_tail(daemon.output()));
        REQUIRE(wait_until([&] { return audit_rows() >= before + more; }, seconds{40}));
        const long long seen = audit_rows();
        const auto deadline = std::chrono::steady_clock::now() + seconds{10};
        while (audit_rows() == seen && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(milliseconds{1});
        const int ms = uniform(0, 260);
        std::this_thread::sleep_for(milliseconds{ms});
        instant = std::to_string(ms) + " ms after a batch committed (" + std::to_string(more) + "+ rows in)";
        break;
      }
    }
    REQUIRE(daemon.running());  // the kill lands on a live daemon, not on one that gave up
    CHECK(daemon.signal_and_wait(SIGKILL, seconds{10}) == 128 + SIGKILL);
    // A predecessor that held leases was proven dead rather than waited for, whenever this one
    // got as far as acquiring them.
    const std::string output = daemon.output();
    if (k > 0 && phases[k - 1] != Phase::start_up && phase != Phase::start_up) {
      INFO(output_tail(output));
      CHECK(output.find("event=instance_dead") != std::string::npos);
      // 3 s margin + up to one 2 s heartbeat, against 9-11 s for a lease lapse.
      REQUIRE(took);
      CHECK(*took < seconds{8});
    }
    schedule << "kill " << k + 1 << ": " << phase_name(phase) << ", " << instant << ", audit rows " << before << " -> "
             << audit_rows();
    if (took) schedule << ", tenants acquired " << took->count() << " ms after exec";
    schedule << "\n";
  }
  INFO(schedule.str());
  // The kills happened mid-run: rows were sent between them, and most were still to go.
  const long long before_final = env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'");
  CHECK(before_final > 0);
  CHECK(before_final < 3000);

  auto run = env.run_until_idle(seconds{120}, "", options);
  INFO(output_tail(run.output));
  REQUIRE(run.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 3000}});
  CHECK(env.count("SELECT count(*) FROM callbackd.pending_work") == 0);
  check_audit_matches_state_and_sandbox(env);
  // Every sub-merchant was set at least once, and the sandbox saw every one of them.
  std::set<std::string> sent;
  for (const auto& r : env.sandbox_requests()) sent.insert(r["sub_merchant"].get<std::string>());
  CHECK(sent.size() == 3000);
}

TEST_CASE("PostgreSQL stopped for 20 s mid-run: the daemon stays up, reconnects with backoff, loses no attempt",
          "[e2e][faults]") {
  PrivateCluster cluster;  // before the Environment: its database lives in this cluster
  Environment env;
  add_paced_tenants(env, 2, 1000);
  env.start_sandbox();
  DaemonConfigOptions options;
  options.request_timeout = milliseconds{1'000};  // lease 11 s: sending must stop within the outage
  ScopedChild daemon(callbackd::test::spawn_process(env.daemon_command("", options)));

  REQUIRE(wait_until([&] { return env.count("SELECT count(*) FROM callbackd.audit_log") >= 300; }, seconds{60}));
  // The outage starts with the stop (a fast shutdown ends every session at once).
  const auto outage_started = std::chrono::steady_clock::now();
  const std::size_t answered_at_stop = env.sandbox_requests().size();
  cluster.stop_server();
  // A request sent before the stop may still be answered; after the lease's send margin
  // (the last renewal + 11 s - 3 s) plus the request deadline, nothing may go out.
  std::this_thread::sleep_until(outage_started + seconds{10});
  const std::size_t answered_at_10s = env.sandbox_requests().size();
  std::this_thread::sleep_until(outage_started + seconds{20});
  const std::size_t answered_at_20s = env.sandbox_requests().size();
  REQUIRE(daemon.running());
  cluster.start_server();

  const bool converged = wait_until(
      [&] {
        return env.states() == std::map<std::string, long long>{{"in_sync", 2000}};
      },
      seconds{120});
  const std::string during = daemon.output();
  INFO(output_tail(during, 8000));
  CHECK(converged);
  REQUIRE(daemon.running());  // the same process all along
  CHECK(daemon.signal_and_wait(SIGTERM, seconds{30}) == 0);
  const std::string log = daemon.output();
  INFO(output_tail(log, 8000));

  // The outage was felt, and survived without a hot loop: the worker's backoff (250 ms
  // doubling to 10 s) makes about 8 attempts in 20-30 s, the listener's the same.
  CHECK(occurrences(log, "event=started ") == 1);
  const auto unavailable = occurrences(log, "database unavailable, retrying");
  CHECK(unavailable >= 2);
  CHECK(unavailable <= 15);
  const auto listen_failures = occurrences(log, "event=listen_failed");
  CHECK(listen_failures >= 1);
  CHECK(listen_failures <= 15);
  // Results answered while the database was down were kept and written afterwards: that is
  // asserted below from the data (every answered request has its audit row). A log line
  // `event=record_failed` is not required: whether a flush meets the dead connection first or
  // the heartbeat does (the worker then waits for the reconnect before flushing) is a race,
  // and the test failed on it about once in ten runs under load.
  CHECK(occurrences(log, "event=database_reconnected") >= 1);
  CHECK(occurrences(log, "event=listen_reconnected") >= 1);

  // Requests the daemon had claimed went on while the database was down; then sending stopped
  // before the tenant leases could lapse.
  INFO("sandbox requests at the stop " << answered_at_stop << ", at +10 s " << answered_at_10s << ", at +20 s "
                                       << answered_at_20s);
  CHECK(answered_at_20s == answered_at_10s);

  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 2000}});
  check_audit_matches_state_and_sandbox(env);
  // No attempt lost: every request the sandbox answered, before, during and after the outage,
  // has exactly one audit row, and no audit row names a request the sandbox never answered.
  std::map<std::string, long long> answered;  // request_id -> audit rows naming it
  for (const auto& r : env.sandbox_requests())
    if (r.value("status", 0) != 0) answered[r["request_id"].get<std::string>()] = 0;
  long long unknown = 0;
  {
    // Closed before the server is stopped again below.
    pqxx::connection c(env.db().conninfo());
    pqxx::read_transaction tx(c);
    for (const auto& row : tx.exec("SELECT request_id, count(*) FROM callbackd.audit_log "
                                   "WHERE request_id IS NOT NULL GROUP BY request_id")) {
      auto it = answered.find(row[0].as<std::string>());
      if (it == answered.end())
        ++unknown;
      else
        it->second = row[1].as<long long>();
    }
  }
  long long missing = 0, duplicated = 0;
  for (const auto& [id, n] : answered) {
    missing += n == 0;
    duplicated += n > 1;
  }
  INFO(answered.size() << " answered requests: " << missing << " without an audit row, " << duplicated
                       << " with more than one; " << unknown << " audit request ids unknown to the sandbox");
  CHECK(answered.size() >= 2000);
  CHECK(missing == 0);
  CHECK(duplicated == 0);
  CHECK(unknown == 0);
  // Some of them were answered during the outage, and recorded only after it.
  CHECK(answered_at_20s > answered_at_stop);

  // Start-up needs the database: with it down, `run` fails at once (status 1, which systemd's
  // Restart=on-failure retries), naming the server; it neither hangs nor exits 78 (a config
  // error, never restarted).
  cluster.stop_server();
  auto refused = callbackd::test::run_process_for(env.daemon_command("", options), seconds{30});
  INFO(refused.output);
  CHECK(refused.exit_status == 1);
  CHECK(refused.output.find("cannot connect to PostgreSQL at host=") != std::string::npos);
}
