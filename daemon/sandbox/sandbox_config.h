// callbackd-sandbox's YAML configuration (documented in docs/sandbox.md). Strict like the
// daemon's: unknown keys and wrong types are all reported at once (StartupError).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "sandbox/faults.h"

namespace callbackd::sandbox {

struct RegisteredMerchant {
  std::string caller_mchid;     // the calling merchant (Authorization mchid)
  std::string serial_no;        // its API certificate serial, uppercase hex
  std::string public_key_file;  // PEM public key or its API certificate
  // Certificate mode: the merchant's APIv3 key (32 bytes). GET /v3/certificates serves it the
  // platform certificates encrypted with it, and its responses carry the platform certificate's
  // serial. Without one the merchant is in public-key mode: /v3/certificates answers 404.
  std::optional<std::string> apiv3_key_file;
};

struct PlatformKey {
  std::string key_id;                           // PUB_KEY_ID_... (public-key mode) or the certificate serial
  std::string private_key_file;                 // signs every response
  std::optional<std::string> certificate_file;  // certificate mode: the platform certificate
  // A rotation: a second platform certificate, listed by /v3/certificates from `listed_after`
  // after start-up on (WeChat Pay: 24 h before it is used), that signs certificate-mode
  // merchants' responses from `switch_after` on.
  struct Rotation {
    std::string private_key_file;
    std::string certificate_file;
    std::chrono::milliseconds listed_after{0};
    std::chrono::milliseconds switch_after{0};
  };
  std::optional<Rotation> rotation;
};

struct Limits {
  std::uint32_t set_per_minute{1000};
  std::size_t window_1s{25};     // default: floor(set_per_minute / 60 * 1.5)
  std::size_t window_60s{1000};  // default: set_per_minute
  // "单ip 5/min": set calls per remote (source) address, whatever the caller, in windows of
  // 1 s (floor(rate / 60 * 1.5), at least 1) and 60 s (rate). nullopt: no such limit.
  std::optional<std::uint32_t> per_source_address_per_minute;
  // GET /v3/marketing/favor/callbacks per caller in any sliding second (WeChat Pay documents
  // 2000 QPS for it); a read over it is answered 429 FREQUENCY_LIMIT_EXCEED.
  std::size_t get_per_second{2000};
  std::size_t max_body_bytes{64 * 1024};
  std::chrono::milliseconds idle_timeout{8'000};   // keep-alive connections closed when idle (WeChat Pay: ~8 s)
  std::chrono::milliseconds timeout_hold{60'000};  // how long a `timeout` fault holds the connection
};

struct SandboxConfig {
  std::string source;  // file name, for messages
  std::string listen_address{"127.0.0.1"};
  std::uint16_t port{0};                 // 0: an ephemeral port (see port_file)
  std::optional<std::string> port_file;  // written with the bound port once listening
  std::string tls_certificate_file;
  std::string tls_private_key_file;
  PlatformKey platform;
  std::vector<RegisteredMerchant> merchants;
  Limits limits;
  FaultPlan faults;
  std::optional<std::string> record_file;  // JSON line per request
  // `--allow-remote` (the command line, never the file): listen beyond loopback on purpose.
  bool allow_remote{false};
};

// The sandbox's /sandbox/* endpoints (faults, limits, stats) are unauthenticated, and its
// throwaway CA is trusted by whoever rehearses with it: listening where other hosts can reach
// it needs `--allow-remote`. The problem naming the address, the flag and why; nullopt when
// the address is loopback-only or the flag was given.
std::optional<Problem> remote_listen_problem(const SandboxConfig& config);

// Relative file names resolve against `base_dir` (the config file's directory).
// Throws StartupError naming every problem.
SandboxConfig parse_sandbox_config(const std::string& yaml_text, const std::string& source,
                                   const std::string& base_dir);
SandboxConfig load_sandbox_config(const std::string& path);

// A runtime change (POST /sandbox/config, SIGHUP): only `limits` and `faults` sections.
struct RuntimeUpdate {
  std::optional<Limits> limits;
  std::optional<FaultPlan> faults;
};
// Throws StartupError (the caller answers 400 / keeps the old settings).
RuntimeUpdate parse_runtime_update(const std::string& yaml_text, const std::string& source);

}  // namespace callbackd::sandbox
