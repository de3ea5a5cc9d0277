// Certificate mode in the schema (migrations/0009_platform_certificates.sql): a tenant is
// configured one way or the other, platform_certificates keeps what the daemon trusted, and
// read_tenants() hands both to the daemon.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <sstream>
#include <string>

#include "pg/reconcile_store.h"
#include "pg/tenants.h"
#include "pg/test_database.h"
#include "support/process.h"

using callbackd::test::TestDatabase;

namespace {

constexpr const char* kPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

void exec(pqxx::connection& c, const std::string& sql) {
  pqxx::work tx(c);
  tx.exec0(sql);
  tx.commit();
}

// The SQLSTATE a statement fails with ("" when it succeeds).
std::string sqlstate_of(pqxx::connection& c, const std::string& sql) {
  try {
    exec(c, sql);
    return "";
  } catch (const pqxx::sql_error& e) {
    return e.sqlstate();
  }
}

std::string tenant_insert(const std::string& id, const std::string& key_id, const std::string& key_path,
                          const std::string& apiv3) {
  return "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
         "wechatpay_key_path, apiv3_key_path) VALUES ('" +
         id + "', '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', 'k.pem', " + key_id + ", " + key_path +
         ", " + apiv3 + ")";
}

std::string certificate_insert(const std::string& tenant, const std::string& serial, const std::string& pem = kPem) {
  return "INSERT INTO callbackd.platform_certificates (tenant_id, serial_no, effective_at, expires_at, "
         "certificate_pem) VALUES ('" +
         tenant + "', '" + serial + "', '2026-01-01Z', '2031-01-01Z', '" + pem + "')";
}

}  // namespace

TEST_CASE("tenants: a key given, or certificate mode, and nothing else", "[pg][platform_certificates]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  struct Row {
    const char* name;
    std::string key_id, key_path, apiv3;
    const char* sqlstate;
  };
  const Row rows[] = {
      {"public key", "'PUB_KEY_ID_01'", "'pub.pem'", "NULL", ""},
      {"certificate mode", "NULL", "NULL", "'apiv3.key'", ""},
      {"both ways (the key given is used)", "'PUB_KEY_ID_01'", "'pub.pem'", "'apiv3.key'", ""},
      {"neither way", "NULL", "NULL", "NULL", "23514"},
      {"a key id without its file", "'PUB_KEY_ID_01'", "NULL", "'apiv3.key'", "23514"},
      {"a key file without its id", "NULL", "'pub.pem'", "NULL", "23514"},
  };
  int n = 0;
  for (const auto& row : rows) {
    INFO(row.name);
    CHECK(sqlstate_of(c, tenant_insert("t" + std::to_string(n++), row.key_id, row.key_path, row.apiv3)) ==
          row.sqlstate);
  }
}

TEST_CASE("platform_certificates: uppercase serials, one per tenant and serial, gone with the tenant",
          "[pg][platform_certificates]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  exec(c, tenant_insert("charlie", "NULL", "NULL", "'charlie/apiv3.key'"));
  CHECK(sqlstate_of(c, certificate_insert("charlie", "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC")) == "");
  CHECK(sqlstate_of(c, certificate_insert("charlie", "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC")) == "23505");
  CHECK(sqlstate_of(c, certificate_insert("charlie", "5dea10ef")) == "23514");
  CHECK(sqlstate_of(c, certificate_insert("charlie", "0A0B0C0D", "not a certificate")) == "23514");
  CHECK(sqlstate_of(c, certificate_insert("nobody", "0A0B0C0D")) == "23503");
  exec(c, "DELETE FROM callbackd.tenants WHERE tenant_id = 'charlie'");
  pqxx::read_transaction tx(c);
  CHECK(tx.exec1("SELECT count(*) FROM callbackd.platform_certificates")[0].as<long>() == 0);
}

TEST_CASE("a new platform certificate notifies the daemons as a changed tenant does", "[pg][platform_certificates]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  exec(c, tenant_insert("charlie", "NULL", "NULL", "'charlie/apiv3.key'"));
  pqxx::connection listener(db.conninfo());
  struct Collector : pqxx::notification_receiver {
    using pqxx::notification_receiver::notification_receiver;
    void operator()(const std::string& payload, int) override { payloads.push_back(payload); }
    std::vector<std::string> payloads;
  } collector(listener, "callbackd_tenants");
  auto drain = [&] {
    for (int i = 0; i < 10; ++i) listener.await_notification(0, 100'000);
  };
  exec(c, certificate_insert("charlie", "0A0B0C0D"));
  drain();
  CHECK(collector.payloads == std::vector<std::string>{"charlie"});
  // Listed again by a later download: only fetched_at moves, nobody needs to re-read.
  exec(c, "UPDATE callbackd.platform_certificates SET fetched_at = now() WHERE serial_no = '0A0B0C0D'");
  drain();
  CHECK(collector.payloads.size() == 1);
}

TEST_CASE("read_tenants: certificate mode with its stored certificates", "[pg][platform_certificates]") {
  TestDatabase db;
  {
    pqxx::connection c(db.conninfo());
    exec(c, tenant_insert("acme", "'PUB_KEY_ID_01'", "'pub.pem'", "NULL"));
    exec(c, tenant_insert("charlie", "NULL", "NULL", "'charlie/apiv3.key'"));
    exec(c, certificate_insert("charlie", "0A0B0C0D"));
    exec(c, certificate_insert("charlie", "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"));
  }
  callbackd::DatabaseConfig config;
  config.url = db.conninfo();
  const auto tenants = callbackd::pg::load_tenants(config);
  REQUIRE(tenants.size() == 2);
  CHECK_FALSE(tenants[0].certificate_mode());
  CHECK(tenants[0].wechatpay_key_id == "PUB_KEY_ID_01");
  CHECK(tenants[0].platform_certificates.empty());
  const auto& charlie = tenants[1];
  CHECK(charlie.certificate_mode());
  CHECK(charlie.wechatpay_key_id.empty());
  CHECK(charlie.apiv3_key_path == "charlie/apiv3.key");
  REQUIRE(charlie.platform_certificates.size() == 2);
  CHECK(charlie.platform_certificates[0].serial == "0A0B0C0D");
  CHECK(charlie.platform_certificates[0].pem == kPem);
  CHECK(charlie.platform_certificates[0].effective_at ==
        std::chrono::system_clock::time_point(std::chrono::seconds(1767225600)));  // 2026-01-01Z
  CHECK(charlie.platform_certificates[0].expires_at ==
        std::chrono::system_clock::time_point(std::chrono::seconds(1924992000)));  // 2031-01-01Z
}

TEST_CASE("ReconcileStore: store a download, move fetched_at, forget expired ones, record first use",
          "[pg][platform_certificates]") {
  TestDatabase db;
  pqxx::connection c(db.conninfo());
  exec(c, tenant_insert("charlie", "NULL", "NULL", "'charlie/apiv3.key'"));
  // Expired a year ago: the next download forgets it.
  exec(c,
       "INSERT INTO callbackd.platform_certificates (tenant_id, serial_no, effective_at, expires_at, certificate_pem) "
       "VALUES ('charlie', '0BAD', now() - interval '5 years', now() - interval '1 year', '" +
           std::string(kPem) + "')");
  callbackd::DatabaseConfig config;
  config.url = db.conninfo();
  callbackd::pg::ReconcileStore store(config, "host-a:1");
  using std::chrono::system_clock;
  const auto t0 = system_clock::time_point(std::chrono::seconds(1767225600));  // 2026-01-01Z
  const auto t1 = system_clock::time_point(std::chrono::seconds(1924992000));  // 2031-01-01Z
  const std::vector<callbackd::TenantRow::StoredCertificate> download = {{"0A0B0C0D", kPem, t0, t1, t0}};
  store.store_platform_certificates("charlie", download);
  {
    pqxx::read_transaction tx(c);
    CHECK(tx.exec1("SELECT string_agg(serial_no, ',') FROM callbackd.platform_certificates")[0].as<std::string>() ==
          "0A0B0C0D");
    CHECK(
        tx.exec1("SELECT expires_at = '2031-01-01Z' AND first_used_at IS NULL FROM callbackd.platform_certificates")[0]
            .as<bool>());
  }
  exec(c, "UPDATE callbackd.platform_certificates SET fetched_at = '2026-02-01Z'");
  store.store_platform_certificates("charlie", download);  // listed again
  store.platform_certificate_used("charlie", "0A0B0C0D");
  pqxx::read_transaction tx(c);
  CHECK(tx.exec1(
              "SELECT fetched_at > '2026-02-01Z' AND first_used_at IS NOT NULL FROM callbackd.platform_certificates")[0]
            .as<bool>());
  CHECK(tx.exec1("SELECT count(*) FROM callbackd.platform_certificates")[0].as<long>() == 1);
}

TEST_CASE("check-config checks the APIv3 key and the platform CA file, and status lists the certificates",
          "[pg][platform_certificates][check-config][status]") {
  TestDatabase db;
  char tmpl[] = "/tmp/callbackd-creds.XXXXXX";
  const std::filesystem::path dir = mkdtemp(tmpl);
  auto write = [&](const std::string& name, const std::string& content, std::filesystem::perms mode) {
    std::ofstream(dir / name) << content;
    std::filesystem::permissions(dir / name, mode);
  };
  const auto owner_only = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
  std::ifstream key_in(std::string(CALLBACKD_TEST_DATA) + "/keys/go_test_private_key_pkcs1.pem");
  std::stringstream key;
  key << key_in.rdbuf();
  write("merchant.pem", key.str(), owner_only);
  write("good.apiv3", "0123456789abcdefghijABCDEFGHIJ-_\n", owner_only);
  write("short.apiv3", "0123456789abcdefghijABCDEFGHIJ-\n", owner_only);
  {
    pqxx::connection c(db.conninfo());
    for (const char* id : {"good", "short"})
      exec(c, std::string("INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, "
                          "apiv3_key_path) VALUES ('") +
                  id + "', '1900000001', '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', 'merchant.pem', '" + id +
                  ".apiv3')");
  }
  const std::string base = "credentials_dir: " + dir.string() + "\n";

  auto checked = callbackd::test::run_process(
      {CALLBACKD_BINARY, "--config", callbackd::test::write_config_for(db.conninfo(), base), "check-config"});
  INFO(checked.output);
  CHECK(checked.exit_status == 78);
  CHECK(checked.output.find("tenant 'good'") == std::string::npos);
  CHECK(checked.output.find("tenant 'short': apiv3_key_path: " + dir.string() +
                            "/short.apiv3: an APIv3 key is 32 bytes, this file holds 31") != std::string::npos);

  auto bad_ca = callbackd::test::run_process(
      {CALLBACKD_BINARY, "--config",
       callbackd::test::write_config_for(db.conninfo(),
                                         "wechatpay:\n  platform_ca_file: " + dir.string() + "/merchant.pem\n" + base),
       "check-config"});
  INFO(bad_ca.output);
  CHECK(bad_ca.exit_status == 78);
  CHECK(bad_ca.output.find("wechatpay.platform_ca_file: " + dir.string() + "/merchant.pem: holds no PEM certificate") !=
        std::string::npos);

  // status: what a certificate-mode tenant verifies with, and until when.
  {
    pqxx::connection c(db.conninfo());
    exec(c, certificate_insert("good", "0A0B0C0D"));
  }
  auto status = callbackd::test::run_process(
      {CALLBACKD_BINARY, "--config", callbackd::test::write_config_for(db.conninfo(), base), "status"});
  INFO(status.output);
  CHECK(status.exit_status == 0);
  CHECK(status.output.find("platform certificates: 0A0B0C0D (expires 2031-01-01 00:00 UTC)") != std::string::npos);
  CHECK(status.output.find("platform certificates: none yet (downloaded when first needed)") != std::string::npos);
  std::filesystem::remove_all(dir);
}
