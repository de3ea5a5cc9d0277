// The end-to-end tier: the real `callbackd run` against a real PostgreSQL (a fresh database
// per test, from the harness's template) and a real `callbackd-sandbox` process over TLS on
// loopback. Keys come from scripts/sandbox-keys (fixture "e2e_keys"): merchants
// 1900000001..1900000004 are registered with the sandbox; the test's tenants sign with them.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "pg/test_database.h"
#include "support/process.h"

namespace e2e {

// A sub-merchant id for row `i` of a test: 10 digits, distinct per `block`.
std::string sub_merchant(int block, int i);

struct TenantSpec {
  TenantSpec(std::string id, std::string caller = "1900000001")
      : tenant_id(std::move(id)), caller_mchid(std::move(caller)) {}
  std::string tenant_id;
  std::string caller_mchid;  // its keys come from the fixture
  int rate_per_minute = 60'000;
  std::string mode = "apply";
  int max_in_flight = 8;
  std::optional<std::string> private_key_path;    // default: the fixture's key of `caller_mchid`
  std::optional<std::string> wechatpay_key_id;    // default: the sandbox's platform public key id
  std::optional<std::string> wechatpay_key_path;  // default: platform_public.pem
  bool adopt_existing = true;                     // tenants.adopt_existing (migrations/0011; the column's default)
  std::string drift_policy = "repair";            // tenants.drift_policy
};

// How write_daemon_config writes the parts tests vary.
struct DaemonConfigOptions {
  bool credentials_dir = true;       // false: leave it out, so that $CREDENTIALS_DIRECTORY is used
  std::string metrics_listen;        // metrics.listen; "" = off
  std::string database_url;          // "" = the test database as the superuser
  std::string credentials_dir_path;  // "" = the fixture's keys directory
  // wechatpay.request_timeout. Tenant leases last 2 x connect_timeout + this + 10 s
  // (core/reconcile/lease_timing.h), so tests that kill instances
  // shorten it to make takeovers quicker.
  std::chrono::milliseconds request_timeout{5'000};
  // Where the daemon finds the sandbox, for a daemon that sees it at other paths (in a
  // container): "" = https://127.0.0.1:<sandbox_port()> and the fixture's ca.pem.
  std::string base_url{};
  std::string ca_file{};
  // wechatpay.backup_url; nullopt leaves the line out, as a hand-written rehearsal config may.
  std::optional<std::string> backup_url{""};
  // More lines of the wechatpay section ("  egress_rate_per_minute: 60\n"), may be empty.
  std::string wechatpay_extra{};
  // wechatpay.read_rate_per_second. Higher than the product's default (50) so that the adoption
  // reads before every first POST do not slow the tests that are about other things; the tests
  // of reads set their own.
  double read_rate_per_second = 1000;
};

// A PostgreSQL cluster of the test's own (tests/pg/pg-harness start into a temp STATE_DIR),
// for tests that stop the server: stopping the shared one would break tests running in
// parallel. While it exists, CALLBACKD_PG_STATE_DIR points at it, so an Environment (or
// TestDatabase) constructed after it uses it. Stopped and removed in the destructor, also
// when the test fails.
class PrivateCluster {
 public:
  PrivateCluster();
  ~PrivateCluster();
  PrivateCluster(const PrivateCluster&) = delete;
  PrivateCluster& operator=(const PrivateCluster&) = delete;

  // The server goes away (fast shutdown: sessions end, connections are refused) and comes
  // back with the same data, socket and options.
  void stop_server();
  void start_server();

 private:
  std::string state_dir_;
  std::optional<std::string> previous_state_dir_;  // the environment variable's old value
};

// The account a test runs `callbackd` as when a file must be unreadable to the daemon: root reads
// any file whatever its mode, so when the suite runs as root (CI) the daemon runs as `postgres`,
// the one unprivileged account that can reach the test cluster's socket directory (mode 0700,
// owned by it); otherwise as the test's own account.
//
// That account is given what it executes and reads in a directory made for it under /tmp (mode
// 0755, removed with this object), never in the checkout: the checkout's parents may be 0700 (a
// clone under /root or in `mktemp -d`), and it must not matter where the checkout lives. What the
// test writes for it (a config, a credentials directory) goes in the Environment's work_dir(),
// also under /tmp, made 0755 by the test.
class DaemonAccount {
 public:
  DaemonAccount();
  ~DaemonAccount();
  DaemonAccount(const DaemonAccount&) = delete;
  DaemonAccount& operator=(const DaemonAccount&) = delete;

  bool drop = false;  // the daemon runs as another account (uid, gid)
  uid_t uid = 0;
  gid_t gid = 0;

  // The fixture's CA bundle (wechatpay.ca_file), where the account can read it.
  const std::string& ca_file() const { return ca_file_; }
  // `callbackd ARGS...` run as the account: when dropping, under setpriv and from a copy of the
  // binary in the account's directory (the build tree is in the checkout).
  std::vector<std::string> command(const std::vector<std::string>& args) const;

 private:
  std::string dir_;  // made for the account, when dropping
  std::string binary_;
  std::string ca_file_;
};

class Environment {
 public:
  Environment();
  ~Environment();

  callbackd::test::TestDatabase& db() { return db_; }
  const std::string& keys_dir() const { return keys_; }

  void add_tenant(const TenantSpec& tenant);
  // A certificate-mode tenant (migrations/0009): no WeChat Pay key, the APIv3 key of `caller`.
  void add_certificate_mode_tenant(const std::string& tenant_id, const std::string& caller);
  // The APIv3 key file of `caller` in keys_dir() (written once, mode 0600; the same 32 bytes
  // for every test), by its name there.
  std::string apiv3_key_file(const std::string& caller);
  // The sandbox started next serves `callers` in certificate mode (platform_cert.pem, their
  // APIv3 keys), with `rotation_yaml` (lines under platform.rotation, may be empty).
  void sandbox_certificate_mode(std::vector<std::string> callers, std::string rotation_yaml = "");
  // `count` rows for `tenant_id`, mchids sub_merchant(block, 0..count-1), notify_url
  // https://notify.example.com/<block>/<i>, switch true, in one statement.
  void add_rows(const std::string& tenant_id, int block, int count);
  void exec(const std::string& sql);
  long long count(const std::string& sql);
  // The first column of the one row `sql` returns, as text ("NULL" for NULL).
  std::string text(const std::string& sql);
  // state -> count, from callbackd.sync_status.
  std::map<std::string, long long> states();

  // Starts callbackd-sandbox with `limits_yaml`/`faults_yaml` (YAML blocks, may be empty) on
  // `port` (0: any free port; a restart after an outage passes sandbox_port(), so that the
  // daemon's configured base_url reaches it again).
  void start_sandbox(const std::string& limits_yaml = "", const std::string& faults_yaml = "", std::uint16_t port = 0);
  // start_sandbox's config file, for a sandbox started elsewhere (in a container that sees
  // keys_dir() and work_dir() at the same paths): it binds 127.0.0.1:`port` (0: any free
  // port), writes the bound port to work_dir()/sandbox.port and its request record to
  // work_dir()/requests.jsonl (read by sandbox_requests()). Returns the file's path.
  std::string write_sandbox_config(const std::string& limits_yaml = "", const std::string& faults_yaml = "",
                                   std::uint16_t port = 0);
  void stop_sandbox();
  // POST /sandbox/config: replaces the running sandbox's limits and/or faults (YAML with
  // `limits:` and/or `faults:` sections, docs/sandbox.md).
  void configure_sandbox(const std::string& yaml);
  std::uint16_t sandbox_port() const { return sandbox_port_; }
  nlohmann::json sandbox_stats();
  // The sandbox's request record: one JSON object per API request, reads of the live value
  // (GET /v3/marketing/favor/callbacks) left out: the set calls and certificate downloads.
  std::vector<nlohmann::json> sandbox_requests();
  // The reads of the live value alone, from the same record.
  std::vector<nlohmann::json> sandbox_reads();
  // POST /sandbox/set: WeChat Pay's settings changed out of band, sub_mchid -> notify_url ("" removes it).
  void set_live_values(const std::map<std::string, std::string>& values);

  // The callbackd config for this environment (database, sandbox, credentials).
  std::string write_daemon_config(const std::string& extra_yaml = "", const DaemonConfigOptions& options = {});
  const std::string& work_dir() const { return work_; }
  // The callbackd command line with write_daemon_config's config, for spawn_process.
  std::vector<std::string> daemon_command(const std::string& extra_yaml = "", const DaemonConfigOptions& options = {});
  // `callbackd --config CONFIG run --exit-when-idle`, killed (and the test failed) after `limit`.
  callbackd::test::Finished run_until_idle(std::chrono::seconds limit = std::chrono::seconds{90},
                                           const std::string& extra_yaml = "", const DaemonConfigOptions& options = {});
  // `callbackd --config CONFIG run` (with `--exit-when-idle` if asked) in the background; the
  // caller waits for it (wait_exit_status_for) or stops it (stop_daemon).
  callbackd::test::Child start_daemon(const std::string& extra_yaml = "", const DaemonConfigOptions& options = {},
                                      bool exit_when_idle = false);
  // SIGTERM, then its exit status within `limit` (-1 and SIGKILL after it).
  int stop_daemon(const callbackd::test::Child& daemon, std::chrono::seconds limit = std::chrono::seconds{30});

 private:
  callbackd::test::TestDatabase db_;
  std::string keys_;
  std::string work_;
  std::optional<callbackd::test::Child> sandbox_;
  std::uint16_t sandbox_port_ = 0;
  std::vector<std::string> certificate_callers_;
  std::string rotation_yaml_;
};

// The audit invariants every run must keep, however it was interrupted (kill -9, database
// outage), checked on the data afterwards:
//  - every in_sync row has an `applied` (or `adopted`) audit row for exactly the revision and
//    update_time it is in sync at (no state change without its audit row; a NULL update_time
//    too: a verified answer whose body was not JSON, or an adoption);
//  - every `applied` or `adopted` audit row carries the Request-ID of a request (a POST, or a
//    read) the sandbox answered 200 for that same sub-merchant (nothing recorded applied without
//    a verified response).
void check_audit_matches_state_and_sandbox(Environment& env);

// Polls `done` every 50 ms until it holds or `limit` passes; whether it held.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit);

// For failure messages: the last `n` bytes of a process's output.
inline std::string output_tail(const std::string& text, std::size_t n = 4000) {
  return text.substr(text.size() > n ? text.size() - n : 0);
}
inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A free loopback port: bound, read, released (the daemon binds it a moment later).
int free_port();

// `check-metrics` against the daemon's /metrics on `port` (the Prometheus client's parser):
// every required family present, and each NAME:LABEL=VALUE,...:MIN sample at least MIN.
callbackd::test::Finished check_metrics(int port, const std::vector<std::string>& samples);

// A tenant configured for `configured_per_minute` against a sandbox that only allows
// `server_per_minute`: runs the daemon until idle and checks that it adapts rather than
// failing rows (every row in_sync, none failed, 429s recorded as rate_limited and never
// counted as a failure, one applied audit row per row). Shared by the pacing and fault tests.
struct LowerLimitRun {
  std::chrono::steady_clock::duration took{};
  nlohmann::json sandbox_stats;
};
LowerLimitRun check_adapts_to_lower_server_limit(Environment& env, int configured_per_minute, int server_per_minute,
                                                 int rows, std::chrono::seconds limit);

}  // namespace e2e
