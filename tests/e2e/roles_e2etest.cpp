// The daemon as a member of callbackd_daemon (migrations/0004_roles.sql) converges real sends
// against the sandbox: the grants cover every statement of a run that actually sends, records
// `applied`, takes tenant leases and heartbeats, and an operator's change made as
// callbackd_operator is picked up by the next run.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <pqxx/pqxx>
#include <thread>

#include "e2e/e2e_support.h"

using namespace e2e;

namespace {

// A LOGIN member of `group` for one test; roles are cluster-wide, so the name carries the
// test database's unique name, and it is dropped at the end.
class LoginRole {
 public:
  LoginRole(const callbackd::test::TestDatabase& db, const std::string& prefix, const std::string& group)
      : admin_(db.conninfo()), name_(prefix + "_" + db.name()) {
    pqxx::connection c(admin_);
    pqxx::nontransaction tx(c);
    tx.exec0("CREATE ROLE " + tx.quote_name(name_) + " LOGIN");
    tx.exec0("GRANT " + tx.quote_name(group) + " TO " + tx.quote_name(name_));
    conninfo_ = "host=" + db.host() + " user=" + name_ + " dbname=" + db.name();
  }
  ~LoginRole() {
    try {
      pqxx::connection c(admin_);
      pqxx::nontransaction tx(c);
      tx.exec0("DROP ROLE IF EXISTS " + tx.quote_name(name_));
    } catch (...) {
    }
  }
  const std::string& name() const { return name_; }
  const std::string& conninfo() const { return conninfo_; }

 private:
  std::string admin_;
  std::string name_;
  std::string conninfo_;
};

// Environment::write_daemon_config() with database.url pointing at `conninfo` instead of the
// superuser's, then `run --exit-when-idle`, killed after `limit`.
callbackd::test::Finished run_as(Environment& env, const std::string& conninfo,
                                 std::chrono::seconds limit = std::chrono::seconds{90}) {
  const std::string path = env.write_daemon_config();
  std::string yaml = callbackd::test::read_file(path);
  const std::string superuser = "url: \"" + env.db().conninfo() + "\"";
  const auto at = yaml.find(superuser);
  REQUIRE(at != std::string::npos);
  yaml.replace(at, superuser.size(), "url: \"" + conninfo + "\"");
  std::ofstream(path, std::ios::trunc) << yaml;

  auto child = callbackd::test::spawn_process({CALLBACKD_BINARY, "--config", path, "run", "--exit-when-idle"});
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  pid_t done = 0;
  while ((done = waitpid(child.pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  callbackd::test::Finished f;
  if (done == 0) {
    kill(child.pid, SIGKILL);
    waitpid(child.pid, &status, 0);
  } else {
    f.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  f.output = callbackd::test::read_file(child.output_path);
  unlink(child.output_path.c_str());
  return f;
}

}  // namespace

TEST_CASE("the daemon converges as a member of callbackd_daemon", "[e2e][roles]") {
  Environment env;
  LoginRole daemon(env.db(), "daemon", "callbackd_daemon");
  LoginRole alice(env.db(), "op", "callbackd_operator");
  env.add_tenant({"tenant1", "1900000001"});
  env.add_tenant({"tenant2", "1900000002"});
  env.add_rows("tenant1", 1, 50);
  env.add_rows("tenant2", 2, 50);
  env.start_sandbox();

  auto run = run_as(env, daemon.conninfo());
  INFO(run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0));
  REQUIRE(run.exit_status == 0);
  CHECK(run.output.find("permission denied") == std::string::npos);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 100}});
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied' AND db_user = '" + daemon.name() +
                  "'") == 100);
  CHECK(env.sandbox_requests().size() == 100);

  // An operator's change, made with the operator's privileges only, is queued and sent.
  {
    pqxx::connection c(alice.conninfo());
    pqxx::work tx(c);
    tx.exec0("UPDATE callbackd.desired_callbacks SET notify_url = notify_url || '/v2' WHERE tenant_id = 'tenant1'");
    tx.commit();
  }
  auto again = run_as(env, daemon.conninfo());
  INFO(again.output.substr(again.output.size() > 4000 ? again.output.size() - 4000 : 0));
  REQUIRE(again.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 100}});
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE applied_notify_url LIKE '%/v2'") == 50);
  CHECK(env.sandbox_requests().size() == 150);
}
