// The machine's configuration: /etc/callbackd/callbackd.yaml (tenants and sub-merchants live
// in SQL, not here). Every key is documented with its default in config/callbackd.example.yaml.
// Parsing is strict: unknown keys, wrong types and bad values are all reported at once, each
// naming the file, the key path and what is expected.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace callbackd {

using Millis = std::chrono::milliseconds;

// WeChat Pay's production API and the backup host its SDKs fail over to.
inline constexpr const char* kWechatpayBaseUrl = "https://api.mch.weixin.qq.com";
inline constexpr const char* kWechatpayBackupUrl = "https://api2.wechatpay.cn";

struct DatabaseConfig {
  std::string url;  // libpq conninfo or URI; CALLBACKD_DATABASE_URL overrides
  Millis connect_timeout{Millis{10'000}};
};

struct WechatpayConfig {
  std::string base_url{kWechatpayBaseUrl};
  // Empty: no failover. When the file leaves it out, parse_config sets kWechatpayBackupUrl if
  // (and only if) base_url is production's, so that a rehearsal never fails over to production.
  std::string backup_url;
  std::optional<std::string> ca_file;  // extra CA bundle (the sandbox's); system store otherwise
  // Certificate mode: downloaded platform certificates must chain to a CA of this PEM file
  // (core/wechatpay/platform_certificates.h, PlatformCa); unset: no chain check.
  std::optional<std::string> platform_ca_file;
  Millis connect_timeout{Millis{5'000}};   // resolve + TCP connect + TLS handshake, each
  Millis request_timeout{Millis{10'000}};  // whole request, from first byte written to body read
  Millis idle_timeout{Millis{5'000}};      // drop pooled connections idle this long (WeChat Pay closes at ~8 s)
  std::size_t max_connections_per_host{16};
  std::size_t max_response_bytes{64 * 1024};
  // A cap on set calls leaving this instance from one source address (requests per minute),
  // shared by all tenants; nullopt: none (docs/pacing.md, "Per source address"). Read at start.
  std::optional<int> egress_rate_per_minute;
  // Local addresses (IP literals) outgoing connections are bound to, in turn, each with its own
  // egress cap; empty: one, the kernel's choice. Read at start; binding is checked then (78).
  std::vector<std::string> source_addresses;
  // GET /v3/marketing/favor/callbacks (adoption, drift checks, plan --refresh): their own pacer,
  // shared fairly by the tenants, never a slot of the set call's (core/reconcile/live_state.h).
  double read_rate_per_second{50};
};

struct ReconcilerConfig {
  Millis poll_interval{Millis{5'000}};  // safety net behind LISTEN/NOTIFY
  Millis resync_interval{Millis{0}};    // 0: off; otherwise re-assert every row this often
  double global_rate_per_second{0};     // 0: no global cap beyond each tenant's rate
  int max_in_flight_per_tenant{4};
  Millis retry_initial_backoff{Millis{1'000}};
  Millis retry_max_backoff{Millis{300'000}};
  Millis tenant_probe_interval{Millis{300'000}};  // a paused (broken) tenant is probed this often
  Millis shutdown_grace{Millis{10'000}};
  // Every row in sync is read back once per interval, spread evenly over it (0: off).
  Millis drift_check_interval{Millis{86'400'000}};
};

struct MetricsConfig {
  std::string listen{"127.0.0.1:9464"};  // empty: no metrics server
};

struct LogConfig {
  enum class Format { logfmt, json };
  std::string level{"info"};  // trace, debug, info, warn, error, critical, off
  Format format{Format::logfmt};
};

struct Config {
  std::string source_path;  // the file this came from, for messages
  DatabaseConfig database;
  WechatpayConfig wechatpay;
  std::string credentials_dir;  // default: $CREDENTIALS_DIRECTORY
  ReconcilerConfig reconciler;
  MetricsConfig metrics;
  LogConfig log;
};

// Reads and validates the file. `env` supplies CALLBACKD_DATABASE_URL and
// CREDENTIALS_DIRECTORY (a function so that tests need not touch the process environment).
// Throws StartupError naming every problem found.
using EnvLookup = std::optional<std::string> (*)(const char* name);
std::optional<std::string> process_env(const char* name);

Config load_config(const std::string& path, EnvLookup env = &process_env);
// The same, from YAML text already in memory (`source_name` is used in messages).
Config parse_config(const std::string& yaml_text, const std::string& source_name, EnvLookup env = &process_env);

}  // namespace callbackd

namespace callbackd {
// Every key path the config accepts ("database.url", ...), in file order. The example file
// config/callbackd.example.yaml must document exactly these (a unit test holds it to that).
const std::vector<std::string>& known_config_keys();
}  // namespace callbackd
