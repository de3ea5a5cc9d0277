// The SQL contract of migrations/ (docs/product.md) as operators and the daemon use it:
// database-maintained columns, the work queue and its NOTIFY, sync_status, audit_log.
#include <catch2/catch.hpp>

#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "pg/test_database.h"

using callbackd::test::TestDatabase;

namespace {

void exec(pqxx::connection& c, const std::string& sql) {
  pqxx::work tx(c);
  tx.exec0(sql);
  tx.commit();
}

pqxx::row row(pqxx::connection& c, const std::string& sql) {
  pqxx::read_transaction tx(c);
  return tx.exec1(sql);
}

void add_tenant(pqxx::connection& c, const std::string& tenant_id, const std::string& mode = "apply") {
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
      "wechatpay_key_path, mode) VALUES ($1, '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', "
      "'acme/apiclient_key.pem', 'PUB_KEY_ID_0112', 'acme/pub_key.pem', $2)",
      tenant_id, mode);
  tx.commit();
}

std::string status_of(pqxx::connection& c, const std::string& mchid) {
  pqxx::read_transaction tx(c);
  return tx.exec_params1("SELECT state FROM callbackd.sync_status WHERE mchid = $1", mchid)[0].as<std::string>();
}

long revision_of(pqxx::connection& c, const std::string& mchid) {
  pqxx::read_transaction tx(c);
  return tx.exec_params1("SELECT revision FROM callbackd.desired_callbacks WHERE mchid = $1", mchid)[0].as<long>();
}

// What the reconciler will write after a verified response.
void record_state(pqxx::connection& c, const std::string& mchid, long revision, const std::string& state) {
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.sub_merchant_state (mchid, tenant_id, revision, state, applied_notify_url, "
      "applied_switch, applied_revision, update_time, attempts) "
      "VALUES ($1, 'acme', $2, $3, 'https://applied.example.com/cb', true, $2, '2015-05-20T13:29:35.120+08:00', 1) "
      "ON CONFLICT (mchid) DO UPDATE SET revision = EXCLUDED.revision, state = EXCLUDED.state",
      mchid, revision, state);
  tx.commit();
}

struct Collector : pqxx::notification_receiver {
  Collector(pqxx::connection_base& c, const std::string& channel) : pqxx::notification_receiver(c, channel) {}
  void operator()(const std::string& payload, int) override { payloads.push_back(payload); }
  std::vector<std::string> payloads;
};

// Waits up to ~5 s in total for at least `n` notifications; returns early once they are in.
void await(pqxx::connection& c, Collector& collector, std::size_t n) {
  for (int i = 0; i < 50 && collector.payloads.size() < n; ++i) c.await_notification(0, 100'000);
}

}  // namespace

TEST_CASE("audit_log accepts an INSERT of the contract columns and refuses UPDATE, DELETE and TRUNCATE",
          "[pg][schema]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  exec(c,
       "INSERT INTO callbackd.audit_log (tenant_id, mchid, notify_url, switch, http_status, error_code, "
       "error_message, request_id, outcome, latency_ms, attempt) VALUES ('acme', '1900000109', "
       "'https://example.com/cb', true, 200, NULL, NULL, '08F78BB5AF0610D9', 'applied', 123, 1)");
  auto r = row(
      c, "SELECT id, created_at IS NOT NULL, db_user, transaction_id IS NOT NULL, outcome FROM callbackd.audit_log");
  CHECK(r[0].as<long>() >= 1);
  CHECK(r[1].as<bool>());
  CHECK(r[2].as<std::string>() == "postgres");
  CHECK(r[3].as<bool>());
  CHECK(r[4].as<std::string>() == "applied");

  const std::string refused = "callbackd.audit_log is append-only: UPDATE/DELETE/TRUNCATE refused";
  for (std::string sql : {"UPDATE callbackd.audit_log SET outcome = 'forged'", "DELETE FROM callbackd.audit_log",
                          "DELETE FROM callbackd.audit_log WHERE false", "TRUNCATE callbackd.audit_log"}) {
    INFO(sql);
    CHECK_THROWS_WITH(exec(c, sql), Catch::Contains(refused));
  }
  auto after = row(c, "SELECT count(*), min(outcome) FROM callbackd.audit_log");
  CHECK(after[0].as<long>() == 1);
  CHECK(after[1].as<std::string>() == "applied");

  // Ids come from the database only.
  CHECK_THROWS(exec(c, "INSERT INTO callbackd.audit_log (id, tenant_id, outcome) VALUES (999, 'acme', 'applied')"));
}

TEST_CASE("desired_callbacks: updated_at and revision are the database's, bumped on every update", "[pg][schema]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  add_tenant(c, "acme");
  exec(c,
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch, updated_at, revision) "
       "VALUES ('1900000109', 'acme', 'https://example.com/cb', true, '2000-01-01T00:00:00Z', 424242)");
  auto inserted = row(c,
                      "SELECT updated_at > now() - interval '1 hour', updated_at::text, revision "
                      "FROM callbackd.desired_callbacks");
  CHECK(inserted[0].as<bool>());  // the writer's 2000-01-01 was overridden
  CHECK(inserted[2].as<long>() != 424242);
  const std::string first_updated_at = inserted[1].as<std::string>();
  const long first_revision = inserted[2].as<long>();

  SECTION("an UPDATE that changes nothing still moves both forward") {
    exec(c, "UPDATE callbackd.desired_callbacks SET notify_url = notify_url");
  }
  SECTION("a writer-supplied updated_at and revision are overridden on UPDATE") {
    exec(c,
         "UPDATE callbackd.desired_callbacks SET notify_url = 'https://example.com/new', "
         "updated_at = '2000-01-01T00:00:00Z', revision = 1");
  }
  pqxx::read_transaction tx(c);
  auto updated = tx.exec_params1("SELECT updated_at > $1::timestamptz, revision FROM callbackd.desired_callbacks",
                                 first_updated_at);
  CHECK(updated[0].as<bool>());
  CHECK(updated[1].as<long>() > first_revision);
}

TEST_CASE("desired_callbacks stores invalid rows verbatim for the daemon to mark", "[pg][schema]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  add_tenant(c, "acme");
  exec(c,
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) VALUES "
       "('not-digits', 'acme', ''), ('1900000110', 'acme', 'http://plain.example.com/'), "
       "('1900000111', 'acme', NULL), ('1900000112', 'acme', 'https://x/' || repeat('a', 300))");
  CHECK(row(c, "SELECT count(*) FROM callbackd.desired_callbacks")[0].as<long>() == 4);
  CHECK(row(c, "SELECT notify_url FROM callbackd.desired_callbacks WHERE mchid = 'not-digits'")[0].as<std::string>() ==
        "");
  // An unknown tenant is still refused: that is a broken reference, not bad input.
  CHECK_THROWS(exec(c, "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id) VALUES ('1900000113', 'nobody')"));
}

TEST_CASE("tenants: defaults and database-maintained timestamps", "[pg][schema]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  add_tenant(c, "acme");
  auto t = row(c, "SELECT rate_per_minute, mode, max_in_flight, created_at, updated_at FROM callbackd.tenants");
  CHECK(t[0].as<int>() == 1000);
  CHECK(t[1].as<std::string>() == "apply");
  CHECK(t[2].as<int>() == 4);
  const std::string created = t[3].as<std::string>();
  exec(c, "UPDATE callbackd.tenants SET rate_per_minute = 600, created_at = '2000-01-01Z', updated_at = '2000-01-01Z'");
  pqxx::read_transaction tx(c);
  auto u = tx.exec_params1("SELECT created_at = $1::timestamptz, updated_at > $1::timestamptz FROM callbackd.tenants",
                           created);
  CHECK(u[0].as<bool>());
  CHECK(u[1].as<bool>());
  tx.abort();
  CHECK_THROWS(exec(c, "UPDATE callbackd.tenants SET mode = 'sometimes'"));
  CHECK_THROWS(exec(c, "UPDATE callbackd.tenants SET rate_per_minute = 0"));
}

TEST_CASE("a change to a desired row queues work and notifies the tenant's channel", "[pg][schema]") {
  TestDatabase db;
  pqxx::connection writer(db.conninfo());
  add_tenant(writer, "acme");
  pqxx::connection listener(db.conninfo());
  Collector desired(listener, "callbackd_desired");

  exec(writer,
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) VALUES "
       "('1900000109', 'acme', 'https://example.com/cb')");
  await(listener, desired, 1);
  REQUIRE(desired.payloads.size() == 1);
  CHECK(desired.payloads[0] == "acme");

  auto queued = row(writer,
                    "SELECT tenant_id, revision, due_at IS NOT NULL, claimed_by IS NULL FROM callbackd.pending_work "
                    "WHERE mchid = '1900000109'");
  CHECK(queued[0].as<std::string>() == "acme");
  CHECK(queued[1].as<long>() == revision_of(writer, "1900000109"));
  CHECK(queued[2].as<bool>());
  CHECK(queued[3].as<bool>());

  // A change while the daemon holds a claim must be sent again: the claim is dropped.
  exec(writer,
       "UPDATE callbackd.pending_work SET claimed_by = 'host-a/123', claim_token = 7, "
       "lease_until = now() + interval '1 minute', due_at = now() + interval '1 hour'");
  exec(writer, "UPDATE callbackd.desired_callbacks SET switch = false WHERE mchid = '1900000109'");
  await(listener, desired, 2);
  CHECK(desired.payloads.size() == 2);
  auto requeued = row(writer,
                      "SELECT revision, claimed_by IS NULL AND claim_token IS NULL AND lease_until IS NULL, "
                      "due_at <= now() FROM callbackd.pending_work");
  CHECK(requeued[0].as<long>() == revision_of(writer, "1900000109"));
  CHECK(requeued[1].as<bool>());
  CHECK(requeued[2].as<bool>());

  // A rolled-back change neither queues nor wakes anyone.
  {
    pqxx::work tx(writer);
    tx.exec0("UPDATE callbackd.desired_callbacks SET switch = true");
    tx.abort();
  }
  listener.await_notification(0, 200'000);
  CHECK(desired.payloads.size() == 2);

  // Nothing is sent for a deleted row: its queue entry goes with it.
  exec(writer, "DELETE FROM callbackd.desired_callbacks WHERE mchid = '1900000109'");
  CHECK(row(writer, "SELECT count(*) FROM callbackd.pending_work")[0].as<long>() == 0);
}

TEST_CASE("sync_status derives each row's state", "[pg][schema]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  add_tenant(c, "acme");
  exec(c,
       "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES "
       "('1900000109', 'acme', 'https://example.com/cb', true)");

  // Never attempted.
  CHECK(status_of(c, "1900000109") == "pending");

  // Recorded for the current revision: the state row speaks.
  record_state(c, "1900000109", revision_of(c, "1900000109"), "in_sync");
  CHECK(status_of(c, "1900000109") == "in_sync");
  auto shown = row(c, "SELECT applied_notify_url, applied_switch, update_time, attempts FROM callbackd.sync_status");
  CHECK(shown[0].as<std::string>() == "https://applied.example.com/cb");
  CHECK(shown[1].as<bool>());
  CHECK(shown[2].as<std::string>() == "2015-05-20T13:29:35.120+08:00");
  CHECK(shown[3].as<int>() == 1);

  // Touched after the last apply: the state is stale.
  exec(c, "UPDATE callbackd.desired_callbacks SET notify_url = notify_url");
  CHECK(status_of(c, "1900000109") == "pending");

  record_state(c, "1900000109", revision_of(c, "1900000109"), "failed");
  CHECK(status_of(c, "1900000109") == "failed");

  SECTION("an operator pause wins") {
    exec(c, "UPDATE callbackd.tenants SET mode = 'paused'");
    CHECK(status_of(c, "1900000109") == "paused");
  }
  SECTION("a pause by the daemon (bad credentials) wins") {
    exec(c,
         "INSERT INTO callbackd.tenant_state (tenant_id, paused_reason, paused_at, error_code) "
         "VALUES ('acme', 'response signature did not verify', now(), 'SIGN_ERROR')");
    CHECK(status_of(c, "1900000109") == "paused");
  }
  SECTION("observe mode reports, it does not pause") {
    exec(c, "UPDATE callbackd.tenants SET mode = 'observe'");
    CHECK(status_of(c, "1900000109") == "failed");
  }
}

TEST_CASE("sync_status has the contract's columns first, in order", "[pg][schema]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  auto r = tx.exec(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'callbackd' "
      "AND table_name = 'sync_status' ORDER BY ordinal_position");
  const std::vector<std::string> contract{
      "mchid",    "tenant_id",        "state",           "applied_notify_url", "applied_switch", "update_time",
      "attempts", "last_http_status", "last_error_code", "last_error_message", "next_attempt_at"};
  REQUIRE(r.size() >= contract.size());
  for (std::size_t i = 0; i < contract.size(); ++i) CHECK(r[static_cast<int>(i)][0].as<std::string>() == contract[i]);
}
