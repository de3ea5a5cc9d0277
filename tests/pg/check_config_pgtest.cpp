// `callbackd check-config` against a real database: every tenant's key files are loaded from
// the credentials directory and every problem is named, each with the tenant and column.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <pqxx/pqxx>

#include "pg/test_database.h"
#include "support/process.h"

namespace fs = std::filesystem;
using callbackd::test::run_process;
using callbackd::test::TestDatabase;

namespace {

// A credentials directory as systemd's LoadCredential= would make it: private keys 0600.
struct CredentialsDir {
  fs::path dir;
  CredentialsDir() {
    char tmpl[] = "/tmp/callbackd-creds.XXXXXX";
    dir = mkdtemp(tmpl);
    const fs::path keys = fs::path(CALLBACKD_TEST_DATA) / "keys";
    copy(keys / "go_test_private_key_pkcs1.pem", "merchant.pem", 0600);
    copy(keys / "second_public.pem", "wechatpay_pub.pem", 0644);
    copy(keys / "go_test_public_key.pem", "own_public.pem", 0644);
    copy(keys / "go_test_private_key_pkcs1.pem", "too_open.pem", 0644);
    fs::create_symlink("/etc/hostname", dir / "escape.pem");
  }
  ~CredentialsDir() { fs::remove_all(dir); }
  void copy(const fs::path& from, const std::string& name, mode_t mode) const {
    fs::copy_file(from, dir / name);
    chmod((dir / name).c_str(), mode);
  }
};

void add_tenant(const TestDatabase& db, const std::string& id, const std::string& private_key,
                const std::string& wechatpay_key,
                const std::string& serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1") {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
      "wechatpay_key_path) VALUES ($1, '1900000001', $2, $3, 'PUB_KEY_ID_0114232134912410000000000000', $4)",
      id, serial, private_key, wechatpay_key);
  tx.commit();
}

}  // namespace

TEST_CASE("check-config passes with readable, matching keys", "[pg][check-config]") {
  TestDatabase db;
  CredentialsDir creds;
  add_tenant(db, "acme", "merchant.pem", "wechatpay_pub.pem");
  const std::string config =
      callbackd::test::write_config_for(db.conninfo(), "credentials_dir: " + creds.dir.string() + "\n");
  auto r = run_process({CALLBACKD_BINARY, "--config", config, "check-config"});
  INFO(r.output);
  CHECK(r.exit_status == 0);
  CHECK(r.output.find("1 tenant(s) with readable, matching keys") != std::string::npos);
}

TEST_CASE("check-config names every tenant problem with its column and fix", "[pg][check-config]") {
  TestDatabase db;
  CredentialsDir creds;
  add_tenant(db, "good", "merchant.pem", "wechatpay_pub.pem");
  add_tenant(db, "absolute", "/etc/shadow", "wechatpay_pub.pem");
  add_tenant(db, "open", "too_open.pem", "wechatpay_pub.pem");
  add_tenant(db, "symlink", "merchant.pem", "escape.pem");
  add_tenant(db, "ownkey", "merchant.pem", "own_public.pem");
  add_tenant(db, "decimal", "merchant.pem", "wechatpay_pub.pem", "464657802379098290429386416316428349262066418149");
  add_tenant(db, "hosts", "merchant.pem", "wechatpay_pub.pem");
  {
    pqxx::connection c(db.conninfo());
    pqxx::work tx(c);
    tx.exec0(
        "UPDATE callbackd.tenants SET allowed_notify_hosts = '{hooks.example.com, *.example.org}' "
        "WHERE tenant_id = 'good'");
    tx.exec0(
        "UPDATE callbackd.tenants SET allowed_notify_hosts = '{hooks.example.com, https://hooks.example.net/cb}' "
        "WHERE tenant_id = 'hosts'");
    tx.commit();
  }
  const std::string config =
      callbackd::test::write_config_for(db.conninfo(), "credentials_dir: " + creds.dir.string() + "\n");
  auto r = run_process({CALLBACKD_BINARY, "--config", config, "check-config"});
  INFO(r.output);
  CHECK(r.exit_status == 78);
  CHECK(r.output.find("tenant 'good'") == std::string::npos);
  CHECK(r.output.find("tenant 'absolute': private_key_path: absolute paths are refused ('/etc/shadow')") !=
        std::string::npos);
  CHECK(r.output.find("tenant 'open': private_key_path: ") != std::string::npos);
  CHECK(r.output.find("too open") != std::string::npos);
  CHECK(r.output.find("chmod 600") != std::string::npos);
  CHECK(r.output.find("tenant 'symlink': wechatpay_key_path: ") != std::string::npos);
  CHECK(r.output.find("outside the credentials directory") != std::string::npos);
  CHECK(r.output.find("tenant 'ownkey': wechatpay_key_path: this is the public half of the tenant's own private key") !=
        std::string::npos);
  CHECK(r.output.find("tenant 'decimal': merchant_serial_no: must be the API certificate serial in uppercase hex") !=
        std::string::npos);
  // A list that would hold every row of the tenant as invalid (migrations/0008_guard_rails.sql).
  CHECK(r.output.find("tenant 'hosts': allowed_notify_hosts: entry \"https://hooks.example.net/cb\" is not a host "
                      "name") != std::string::npos);
  CHECK(r.output.find("tenant 'hosts': private_key_path") == std::string::npos);
}

TEST_CASE("check-config reports an unmigrated database, an unreadable CA file and a missing credentials_dir",
          "[pg][check-config]") {
  TestDatabase db{TestDatabase::Schema::empty};
  const std::string config = callbackd::test::write_config_for(
      db.conninfo(), "wechatpay:\n  ca_file: /nonexistent/ca.pem\ncredentials_dir: /nonexistent/keys\n");
  auto r = run_process({CALLBACKD_BINARY, "--config", config, "check-config"});
  INFO(r.output);
  CHECK(r.exit_status == 78);
  CHECK(r.output.find("run `callbackd migrate`") != std::string::npos);
  CHECK(r.output.find("wechatpay.ca_file: cannot read /nonexistent/ca.pem") != std::string::npos);
  CHECK(
      r.output.find("credentials_dir: /nonexistent/keys cannot be opened: No such file or directory (fix: create it") !=
      std::string::npos);
}

TEST_CASE("check-config names an unreachable database without its password", "[pg][check-config]") {
  const std::string config =
      callbackd::test::write_config_for("host=/nonexistent-socket-dir dbname=nope user=u password=hunter2", "");
  auto r = run_process({CALLBACKD_BINARY, "--config", config, "check-config"});
  INFO(r.output);
  CHECK(r.exit_status == 78);
  CHECK(r.output.find("dbname=nope") != std::string::npos);
  CHECK(r.output.find("hunter2") == std::string::npos);
}
