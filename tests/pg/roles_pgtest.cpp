// Least privilege (migrations/0004_roles.sql, docs/security.md): each group role can do its job
// and nothing more, proven by connecting AS a login member of it, and by running the real
// `callbackd` commands as the daemon's role. Audit retention: only old rows, in batches, only
// through apply_audit_retention(), which only callbackd_retention may execute.
//
// Roles are cluster-wide and tests run in parallel on one cluster: every login role carries the
// test database's (unique) name and is dropped when the test ends.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "pg/test_database.h"
#include "support/process.h"

namespace fs = std::filesystem;
using callbackd::test::LoginRole;
using callbackd::test::run_process;
using callbackd::test::TestDatabase;

namespace {

void exec(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::work tx(c);
  tx.exec0(sql);
  tx.commit();
}

long long count(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<long long>();
}

const char* kTenant =
    "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
    "wechatpay_key_path) VALUES ('acme', '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', "
    "'merchant.pem', 'PUB_KEY_ID_0114232134912410000000000000', 'wechatpay_pub.pem')";

struct Collector : pqxx::notification_receiver {
  Collector(pqxx::connection_base& c, const std::string& channel) : pqxx::notification_receiver(c, channel) {}
  void operator()(const std::string& payload, int) override { payloads.push_back(payload); }
  std::vector<std::string> payloads;
};

// Notices (RAISE NOTICE) of one connection, e.g. apply_audit_retention's batch count.
struct Notices : pqxx::errorhandler {
  explicit Notices(pqxx::connection_base& c) : pqxx::errorhandler(c) {}
  bool operator()(const char msg[]) noexcept override {
    messages.emplace_back(msg);
    return true;
  }
  std::vector<std::string> messages;
};

const std::string kDenied = "permission denied for";

// Statements the role must not be able to run; each is tried in its own transaction.
void check_denied(const std::string& conninfo, const std::vector<std::string>& statements) {
  for (const auto& sql : statements) {
    INFO(sql);
    CHECK_THROWS_WITH(exec(conninfo, sql), Catch::Contains(kDenied));
  }
}

// A credentials directory with the test keys, private key 0600 (check-config refuses others).
struct CredentialsDir {
  fs::path dir;
  CredentialsDir() {
    char tmpl[] = "/tmp/callbackd-roles-creds.XXXXXX";
    dir = mkdtemp(tmpl);
    const fs::path keys = fs::path(CALLBACKD_TEST_DATA) / "keys";
    fs::copy_file(keys / "go_test_private_key_pkcs1.pem", dir / "merchant.pem");
    chmod((dir / "merchant.pem").c_str(), 0600);
    fs::copy_file(keys / "second_public.pem", dir / "wechatpay_pub.pem");
    chmod((dir / "wechatpay_pub.pem").c_str(), 0644);
  }
  ~CredentialsDir() { fs::remove_all(dir); }
};

// A daemon that lacks a privilege does not crash: it logs the database error and retries, so
// `run --exit-when-idle` would never exit. Bounded, so that such a run fails the test instead of
// hanging it.
callbackd::test::Finished run_bounded(const std::vector<std::string>& args, std::chrono::seconds limit) {
  auto child = callbackd::test::spawn_process(args);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  pid_t done = 0;
  while ((done = waitpid(child.pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  callbackd::test::Finished f;
  if (done == 0) {
    kill(child.pid, SIGKILL);
    waitpid(child.pid, &status, 0);  // exit_status stays -1: timed out
  } else {
    f.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  f.output = callbackd::test::read_file(child.output_path);
  unlink(child.output_path.c_str());
  return f;
}

}  // namespace

TEST_CASE("roles: an operator writes desired state, which still queues work and notifies", "[pg][roles]") {
  TestDatabase db;
  LoginRole alice(db, "op", "callbackd_operator");

  pqxx::connection listener(alice.conninfo());
  Collector desired(listener, "callbackd_desired");

  exec(alice.conninfo(), kTenant);
  exec(alice.conninfo(), "UPDATE callbackd.tenants SET rate_per_minute = 600 WHERE tenant_id = 'acme'");
  exec(alice.conninfo(),
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) "
       "VALUES ('1900000109', 'acme', 'https://example.com/cb', true)");
  for (int i = 0; i < 50 && desired.payloads.empty(); ++i) listener.await_notification(0, 100'000);
  REQUIRE(desired.payloads.size() == 1);
  CHECK(desired.payloads[0] == "acme");

  // The queue entry is written by the definer's-rights trigger, at the row's newest revision,
  // and an operator's UPDATE moves it forward the same way.
  const std::string queued_at_revision =
      "SELECT count(*) FROM callbackd.pending_work w JOIN callbackd.desired_callbacks d USING (mchid) "
      "WHERE w.revision = d.revision AND d.mchid = '1900000109'";
  CHECK(count(alice.conninfo(), queued_at_revision) == 1);
  const long long first = count(alice.conninfo(), "SELECT revision FROM callbackd.pending_work");
  exec(alice.conninfo(), "UPDATE callbackd.desired_callbacks SET notify_url = 'https://example.com/new'");
  CHECK(count(alice.conninfo(), "SELECT revision FROM callbackd.pending_work") > first);
  CHECK(count(alice.conninfo(), queued_at_revision) == 1);

  // Reads everything an operator looks at.
  CHECK(count(alice.conninfo(), "SELECT count(*) FROM callbackd.sync_status WHERE state = 'pending'") == 1);
  CHECK(count(alice.conninfo(), "SELECT count(*) FROM callbackd.audit_log") == 0);
  CHECK(count(alice.conninfo(), "SELECT count(*) FROM callbackd.tenant_state") == 0);
  CHECK(count(alice.conninfo(), "SELECT count(*) FROM callbackd.schema_migrations") >= 4);

  // Writes nothing the daemon owns, and cannot forge or erase evidence.
  check_denied(
      alice.conninfo(),
      {"INSERT INTO callbackd.audit_log (tenant_id, outcome) VALUES ('acme', 'applied')",
       "UPDATE callbackd.audit_log SET outcome = 'forged'", "DELETE FROM callbackd.audit_log",
       "TRUNCATE callbackd.audit_log",
       "INSERT INTO callbackd.sub_merchant_state (mchid, tenant_id, revision, state) "
       "VALUES ('1900000109', 'acme', 999999, 'in_sync')",
       "UPDATE callbackd.sub_merchant_state SET state = 'in_sync'",
       "UPDATE callbackd.pending_work SET due_at = now() + interval '1 year'", "DELETE FROM callbackd.pending_work",
       "INSERT INTO callbackd.tenant_state (tenant_id, paused_reason) VALUES ('acme', 'x')",
       "DELETE FROM callbackd.tenant_leases", "SELECT nextval('callbackd.desired_revision_seq')",
       "SELECT callbackd.apply_audit_retention('30 days')"});

  // Deleting the desired row removes its queue entry through the foreign key, which runs as the
  // table owner: the operator needs no DELETE on pending_work for that.
  exec(alice.conninfo(), "DELETE FROM callbackd.desired_callbacks WHERE mchid = '1900000109'");
  CHECK(count(db.conninfo(), "SELECT count(*) FROM callbackd.pending_work") == 0);
}

TEST_CASE("roles: the daemon role runs check-config, plan, status and run --exit-when-idle", "[pg][roles]") {
  TestDatabase db;
  CredentialsDir creds;
  LoginRole daemon(db, "daemon", "callbackd_daemon");
  LoginRole alice(db, "op", "callbackd_operator");

  exec(alice.conninfo(), kTenant);
  // Invalid rows: the daemon must claim, judge, audit, record and settle them without any
  // request, so this exercises every write of a run with no WeChat Pay endpoint at all.
  exec(alice.conninfo(),
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) VALUES "
       "('not-digits', 'acme', 'https://example.com/cb'), ('1900000110', 'acme', 'http://plain.example.com/'), "
       "('1900000111', 'acme', '')");

  const std::string config = callbackd::test::write_config_for(
      daemon.conninfo(), "credentials_dir: " + creds.dir.string() +
                             "\nwechatpay:\n  base_url: https://127.0.0.1:9\n  backup_url: \"\"\n"
                             "metrics:\n  listen: \"\"\n");

  auto check = run_process({CALLBACKD_BINARY, "--config", config, "check-config"});
  INFO(check.output);
  CHECK(check.exit_status == 0);

  auto plan = run_process({CALLBACKD_BINARY, "--config", config, "plan", "--detailed-exitcode"});
  INFO(plan.output);
  CHECK(plan.exit_status == 0);  // rows that would only be marked invalid are nothing to send
  CHECK(plan.output.find("3 to mark invalid") != std::string::npos);

  auto run = run_bounded({CALLBACKD_BINARY, "--config", config, "run", "--exit-when-idle"}, std::chrono::seconds{30});
  INFO(run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0));
  // 2: idle with work left, the three invalid rows (the summary reads sync_status as the
  // daemon role too).
  REQUIRE(run.exit_status == 2);
  CHECK(run.output.find("callbackd: idle with work left: 3 rows invalid (acme: 3 INVALID_DESIRED_ROW)") !=
        std::string::npos);
  CHECK(run.output.find("permission denied") == std::string::npos);

  CHECK(count(db.conninfo(), "SELECT count(*) FROM callbackd.sync_status WHERE state = 'invalid'") == 3);
  CHECK(count(db.conninfo(), "SELECT count(*) FROM callbackd.pending_work") == 0);
  // The audit rows were written by the daemon's login role, and it heartbeated as an instance.
  {
    pqxx::connection c(db.conninfo());
    pqxx::read_transaction tx(c);
    CHECK(tx.exec_params1("SELECT count(*) FROM callbackd.audit_log WHERE db_user = $1", daemon.name())[0].as<int>() ==
          3);
    CHECK(tx.exec1("SELECT count(*) FROM callbackd.instances")[0].as<int>() >= 1);
  }

  auto status = run_process({CALLBACKD_BINARY, "--config", config, "status"});
  INFO(status.output);
  CHECK(status.exit_status == 0);
  CHECK(status.output.find("acme") != std::string::npos);

  auto idle_plan = run_process({CALLBACKD_BINARY, "--config", config, "plan"});
  INFO(idle_plan.output);
  CHECK(idle_plan.exit_status == 0);
  CHECK(idle_plan.output.find("0 to mark invalid") != std::string::npos);
}

TEST_CASE("roles: the daemon role cannot rewrite history or desired state", "[pg][roles]") {
  TestDatabase db;
  LoginRole daemon(db, "daemon", "callbackd_daemon");
  exec(db.conninfo(), kTenant);

  // What it needs it has: append and read the audit log.
  exec(daemon.conninfo(), "INSERT INTO callbackd.audit_log (tenant_id, outcome) VALUES ('acme', 'applied')");
  CHECK(count(daemon.conninfo(), "SELECT count(*) FROM callbackd.audit_log") == 1);

  check_denied(
      daemon.conninfo(),
      {"UPDATE callbackd.audit_log SET outcome = 'forged'", "DELETE FROM callbackd.audit_log",
       "DELETE FROM callbackd.audit_log WHERE false", "TRUNCATE callbackd.audit_log",
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) "
       "VALUES ('1900000109', 'acme', 'https://evil.example.com/')",
       "UPDATE callbackd.tenants SET private_key_path = '/etc/shadow'",
       "INSERT INTO callbackd.tenant_wechatpay_keys (tenant_id, key_id, key_path) VALUES ('acme', 'k', 'k.pem')",
       "DELETE FROM callbackd.schema_migrations", "SELECT callbackd.apply_audit_retention('30 days')",
       // Setting the retention flag by hand gets it nowhere: it lacks the privilege.
       "SET callbackd.audit_retention = 'on'; DELETE FROM callbackd.audit_log"});
  CHECK(count(db.conninfo(), "SELECT count(*) FROM callbackd.audit_log") == 1);
}

// db_user, created_at, client_addr, application_name and transaction_id say who wrote an audit
// row, when, from where and in which transaction (migrations/0006_audit_columns.sql): values an
// INSERT names for them are replaced by the true ones, for the daemon's role and the owner alike.
TEST_CASE("roles: nobody chooses the audit's own columns, the daemon role included", "[pg][roles]") {
  TestDatabase db;
  LoginRole daemon(db, "daemon", "callbackd_daemon");
  const std::string forged_columns =
      "(tenant_id, outcome, claim_token, db_user, created_at, client_addr, application_name, transaction_id)";
  const std::string forged_values = "'2000-01-01', '203.0.113.7', 'forged-app', '1'";

  struct Truth {
    std::string xid, started;
  };
  // Inserts two forged rows as `conninfo` (a plain INSERT, and the daemon's own shape: ON
  // CONFLICT on the claim token) and returns its transaction id and start time.
  auto insert_forged = [&](const std::string& conninfo, const std::string& outcome, int claim_token) {
    pqxx::connection c(conninfo + " application_name=roles-true-app");
    pqxx::work tx(c);
    Truth truth;
    truth.xid = tx.exec1("SELECT pg_current_xact_id()::text")[0].as<std::string>();
    truth.started = tx.exec1("SELECT now()::text")[0].as<std::string>();
    tx.exec0("INSERT INTO callbackd.audit_log " + forged_columns + " VALUES ('acme', '" + outcome +
             "', NULL, 'postgres', " + forged_values + ")");
    tx.exec0("INSERT INTO callbackd.audit_log " + forged_columns + " SELECT 'acme', '" + outcome + "', " +
             std::to_string(claim_token) + ", 'someone_else', " + forged_values +
             " ON CONFLICT (claim_token) WHERE claim_token IS NOT NULL DO NOTHING");
    tx.commit();
    return truth;
  };
  auto check_true = [&](const std::string& outcome, const std::string& who, const Truth& truth) {
    pqxx::connection c(db.conninfo());
    pqxx::read_transaction tx(c);
    const auto rows = tx.exec_params(
        "SELECT db_user, created_at >= $2::timestamptz AND created_at <= now(), client_addr IS NULL, "
        "application_name, transaction_id::text FROM callbackd.audit_log WHERE outcome = $1",
        outcome, truth.started);
    REQUIRE(rows.size() == 2);
    for (const auto& r : rows) {
      CHECK(r[0].as<std::string>() == who);
      CHECK(r[1].as<bool>());  // written now, not in 2000
      CHECK(r[2].as<bool>());  // a unix-socket session has no client address
      CHECK(r[3].as<std::string>() == "roles-true-app");
      CHECK(r[4].as<std::string>() == truth.xid);
    }
  };

  // The daemon's login role (the one `callbackd run` uses): INSERT is all it needs.
  const Truth daemon_truth = insert_forged(daemon.conninfo(), "by-daemon", 1);
  check_true("by-daemon", daemon.name(), daemon_truth);
  // The owner (here the superuser that migrated the template) is held to the same: grants would
  // not bind it, and its SECURITY DEFINER functions write as it.
  const Truth owner_truth = insert_forged(db.conninfo(), "by-owner", 2);
  check_true("by-owner", "postgres", owner_truth);
}

namespace {
// Audit rows with a created_at of the test's choosing, as an archive restore writes them: the
// audit_log_stamp trigger (0006) sets the real time on every INSERT, so only a superuser with
// ordinary triggers off gets past it (what pg_restore --disable-triggers does).
void insert_backdated(const TestDatabase& db, const std::string& sql) {
  exec(db.conninfo(), "SET LOCAL session_replication_role = replica; " + sql);
}
}  // namespace

TEST_CASE("roles: audit retention deletes only rows older than keep, in batches, without blocking writers",
          "[pg][roles][retention]") {
  TestDatabase db;
  LoginRole keeper(db, "ret", "callbackd_retention");
  LoginRole daemon(db, "daemon", "callbackd_daemon");
  LoginRole alice(db, "op", "callbackd_operator");

  // Restored from an archive: a young row first (ids do not strictly follow time), 25 rows of 40
  // days ago, one "from the future", 5 young rows.
  insert_backdated(
      db,
      "INSERT INTO callbackd.audit_log (tenant_id, outcome) VALUES ('acme', 'young');"
      "INSERT INTO callbackd.audit_log (tenant_id, outcome, created_at) "
      "  SELECT 'acme', 'old', now() - interval '40 days' FROM generate_series(1, 25);"
      "INSERT INTO callbackd.audit_log (tenant_id, outcome, created_at) VALUES ('acme', 'young', now() + interval '1 day');"
      "INSERT INTO callbackd.audit_log (tenant_id, outcome, created_at) "
      "  SELECT 'acme', 'young', now() - interval '29 days' FROM generate_series(1, 5)");

  SECTION("a keep shorter than the floor is refused and deletes nothing") {
    for (std::string keep : {"6 days 23:59", "1 day", "0", "-1 year"}) {
      INFO(keep);
      CHECK_THROWS_WITH(exec(keeper.conninfo(), "SELECT callbackd.apply_audit_retention('" + keep + "')"),
                        Catch::Contains("keep must be at least 7 days"));
    }
    CHECK_THROWS_WITH(exec(keeper.conninfo(), "SELECT callbackd.apply_audit_retention('30 days', 0)"),
                      Catch::Contains("batch_size must be between 1 and 1000000"));
    CHECK(count(db.conninfo(), "SELECT count(*) FROM callbackd.audit_log") == 32);
  }

  SECTION("only the retention role may run it; nobody may delete directly") {
    for (const auto* role : {&daemon, &alice}) {
      INFO(role->name());
      CHECK_THROWS_WITH(exec(role->conninfo(), "SELECT callbackd.apply_audit_retention('30 days')"),
                        Catch::Contains("permission denied for function apply_audit_retention"));
    }
    // The retention role's only way in is the function.
    check_denied(keeper.conninfo(), {"DELETE FROM callbackd.audit_log", "SELECT count(*) FROM callbackd.audit_log",
                                     "SELECT count(*) FROM callbackd.tenants"});
    // Even the owner cannot delete outside the function: the trigger refuses.
    CHECK_THROWS_WITH(exec(db.conninfo(), "DELETE FROM callbackd.audit_log WHERE outcome = 'old'"),
                      Catch::Contains("append-only"));
    CHECK(count(db.conninfo(), "SELECT count(*) FROM callbackd.audit_log") == 32);
  }

  SECTION("old rows go in batches, young ones stay, and the deletion is itself audited") {
    pqxx::connection c(keeper.conninfo());
    Notices notices(c);
    pqxx::work tx(c);
    const long long deleted = tx.exec1("SELECT callbackd.apply_audit_retention('30 days', 10)")[0].as<long long>();
    CHECK(deleted == 25);
    // The flag that lets the function's DELETEs past the trigger is off again for the rest of
    // the caller's transaction.
    CHECK(tx.exec1("SELECT current_setting('callbackd.audit_retention', true)")[0].as<std::string>() == "off");

    // The deleting transaction is still open: the daemon appends meanwhile without waiting
    // (a lock wait would hit the timeout and throw).
    {
      pqxx::connection d(daemon.conninfo());
      pqxx::work w(d);
      w.exec0("SET LOCAL lock_timeout = '2s'");
      w.exec0("INSERT INTO callbackd.audit_log (tenant_id, outcome) VALUES ('acme', 'during')");
      w.commit();
    }
    tx.commit();

    bool three_batches = false;
    for (const auto& m : notices.messages)
      if (m.find("deleted 25 rows") != std::string::npos && m.find("in 3 batches") != std::string::npos)
        three_batches = true;
    INFO((notices.messages.empty() ? std::string("no notice") : notices.messages.back()));
    CHECK(three_batches);

    pqxx::connection admin(db.conninfo());
    pqxx::read_transaction r(admin);
    CHECK(r.exec1("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'old'")[0].as<int>() == 0);
    CHECK(r.exec1("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'young'")[0].as<int>() == 7);
    CHECK(r.exec1("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'during'")[0].as<int>() == 1);
    auto audited = r.exec_params1(
        "SELECT count(*), min(error_message) FROM callbackd.audit_log WHERE outcome = 'retention' AND db_user = $1",
        keeper.name());
    CHECK(audited[0].as<int>() == 1);
    CHECK(audited[1].as<std::string>().find("deleted 25 audit rows") != std::string::npos);
    r.abort();

    // Nothing is old any more: a second run deletes nothing.
    pqxx::work again(c);
    CHECK(again.exec1("SELECT callbackd.apply_audit_retention('30 days', 10)")[0].as<long long>() == 0);
    again.commit();
  }
}

// Production runs `migrate` as a dedicated, non-superuser schema owner; everything above runs on
// the harness's template, migrated by the superuser. Here the definer's-rights triggers and the
// retention function belong to an ordinary role, which must still be enough for each group's job.
TEST_CASE("roles: migrated by a non-superuser schema owner, every group role still works", "[pg][roles]") {
  TestDatabase db{TestDatabase::Schema::empty};
  const std::string owner = "owner_" + db.name();
  {
    pqxx::connection c(db.conninfo());
    pqxx::nontransaction tx(c);
    // No CREATEROLE: the group roles already exist in this cluster (the template made them),
    // which is the case of a second database on a shared cluster.
    tx.exec0("CREATE ROLE " + tx.quote_name(owner) + " LOGIN");
    tx.exec0("ALTER DATABASE " + tx.quote_name(db.name()) + " OWNER TO " + tx.quote_name(owner));
  }
  // The owner role owns the database and every object in it: hand them back before dropping it.
  struct DropOwner {
    const TestDatabase& db;
    std::string owner;
    ~DropOwner() {
      try {
        pqxx::connection c(db.conninfo());
        pqxx::nontransaction tx(c);
        tx.exec0("REASSIGN OWNED BY " + tx.quote_name(owner) + " TO postgres");
        tx.exec0("DROP OWNED BY " + tx.quote_name(owner));
        tx.exec0("DROP ROLE " + tx.quote_name(owner));
      } catch (...) {}
    }
  } drop_owner{db, owner};
  const std::string owner_conninfo = "host=" + db.host() + " user=" + owner + " dbname=" + db.name();

  auto migrate =
      run_process({CALLBACKD_BINARY, "--config", callbackd::test::write_config_for(owner_conninfo), "migrate"});
  INFO(migrate.output);
  REQUIRE(migrate.exit_status == 0);
  CHECK(count(db.conninfo(),
              "SELECT count(*) FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner "
              "WHERE p.proname IN ('desired_callbacks_enqueue', 'apply_audit_retention') AND NOT r.rolsuper") == 2);

  LoginRole alice(db, "op", "callbackd_operator");
  LoginRole daemon(db, "daemon", "callbackd_daemon");
  LoginRole keeper(db, "ret", "callbackd_retention");

  exec(alice.conninfo(), kTenant);
  exec(
      alice.conninfo(),
      "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) VALUES ('1900000109', 'acme', 'https://example.com/cb')");
  CHECK(count(alice.conninfo(), "SELECT count(*) FROM callbackd.pending_work") == 1);

  auto plan = run_process({CALLBACKD_BINARY, "--config", callbackd::test::write_config_for(daemon.conninfo()), "plan",
                           "--detailed-exitcode"});
  INFO(plan.output);
  CHECK(plan.exit_status == 2);  // one row to send

  insert_backdated(
      db,
      "INSERT INTO callbackd.audit_log (tenant_id, outcome, created_at) VALUES ('acme', 'old', now() - interval '1 year')");
  // The owner itself cannot backdate a row (0006): it is stamped now, so retention keeps it.
  exec(
      owner_conninfo,
      "INSERT INTO callbackd.audit_log (tenant_id, outcome, created_at) VALUES ('acme', 'owner-dated', now() - interval '1 year')");
  CHECK_THROWS_WITH(exec(owner_conninfo, "DELETE FROM callbackd.audit_log"), Catch::Contains("append-only"));
  {
    pqxx::connection c(keeper.conninfo());
    pqxx::work tx(c);
    CHECK(tx.exec1("SELECT callbackd.apply_audit_retention('30 days')")[0].as<long long>() == 1);
    tx.commit();
  }
  CHECK(count(db.conninfo(), "SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'old'") == 0);
  CHECK(count(db.conninfo(), "SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'owner-dated'") == 1);
}
