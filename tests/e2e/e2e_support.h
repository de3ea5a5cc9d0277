// The end-to-end tier: the real `callbackd run` against a real PostgreSQL (a fresh database
// per test, from the harness's template) and a real `callbackd-sandbox` process over TLS on
// loopback. Keys come from scripts/sandbox-keys (fixture "e2e_keys"): merchants
// 1900000001..1900000004 are registered with the sandbox; the test's tenants sign with them.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pg/test_database.h"
#include "support/process.h"

namespace e2e {

// A sub-merchant id for row `i` of a test: 10 digits, distinct per `block`.
std::string sub_merchant(int block, int i);

struct TenantSpec {
  TenantSpec(std::string id, std::string caller_mchid = "1900000001")
      : tenant_id(std::move(id)), mchid(std::move(caller_mchid)) {}
  std::string tenant_id;
  std::string mchid;  // the calling merchant; its keys come from the fixture
  int rate_per_minute = 60'000;
  std::string mode = "apply";
  int max_in_flight = 8;
  std::optional<std::string> private_key_path;  // default: the fixture's key of `mchid`
  std::optional<std::string> wechatpay_key_id;    // default: the sandbox's platform public key id
  std::optional<std::string> wechatpay_key_path;  // default: platform_public.pem
};

// How write_daemon_config writes the parts tests vary.
struct DaemonConfigOptions {
  bool credentials_dir = true;  // false: leave it out, so that $CREDENTIALS_DIRECTORY is used
  std::string metrics_listen;   // metrics.listen; "" = off
  std::string database_url;     // "" = the test database as the superuser
  std::string credentials_dir_path;  // "" = the fixture's keys directory
};

class Environment {
 public:
  Environment();
  ~Environment();

  callbackd::test::TestDatabase& db() { return db_; }
  const std::string& keys_dir() const { return keys_; }

  void add_tenant(const TenantSpec& tenant);
  // `count` rows for `tenant_id`, mchids sub_merchant(block, 0..count-1), notify_url
  // https://notify.example.com/<block>/<i>, switch true, in one statement.
  void add_rows(const std::string& tenant_id, int block, int count);
  void exec(const std::string& sql);
  long long count(const std::string& sql);
  // state -> count, from callbackd.sync_status.
  std::map<std::string, long long> states();

  // Starts callbackd-sandbox with `limits_yaml`/`faults_yaml` (YAML blocks, may be empty).
  void start_sandbox(const std::string& limits_yaml = "", const std::string& faults_yaml = "");
  void stop_sandbox();
  std::uint16_t sandbox_port() const { return sandbox_port_; }
  nlohmann::json sandbox_stats();
  // The sandbox's request record: one JSON object per API request.
  std::vector<nlohmann::json> sandbox_requests();

  // The callbackd config for this environment (database, sandbox, credentials).
  std::string write_daemon_config(const std::string& extra_yaml = "", const DaemonConfigOptions& options = {});
  const std::string& work_dir() const { return work_; }
  // `callbackd --config CONFIG run --exit-when-idle`, killed (and the test failed) after `limit`.
  callbackd::test::Finished run_until_idle(std::chrono::seconds limit = std::chrono::seconds{90},
                                           const std::string& extra_yaml = "", const DaemonConfigOptions& options = {});

 private:
  callbackd::test::TestDatabase db_;
  std::string keys_;
  std::string work_;
  std::optional<callbackd::test::Child> sandbox_;
  std::uint16_t sandbox_port_ = 0;
};

}  // namespace e2e
