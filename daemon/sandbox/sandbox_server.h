// callbackd-sandbox's HTTPS server: POST and GET /v3/marketing/favor/callbacks answered the
// way WeChat Pay does (Authorization verified, body validated, per-caller sliding-window rate
// limits, every response signed with the platform key), plus fault injection, a JSON-lines
// request record and GET /sandbox/stats. Usable in-process (tests) or from main.cpp.
// Beast stays in sandbox_server.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sandbox/sandbox_config.h"

namespace callbackd::sandbox {

class SandboxServer {
 public:
  // Loads the TLS certificate, the platform key and every merchant's key, opens the record
  // file. Throws StartupError naming every problem.
  explicit SandboxServer(SandboxConfig config);
  ~SandboxServer();  // stops serving
  SandboxServer(const SandboxServer&) = delete;
  SandboxServer& operator=(const SandboxServer&) = delete;

  // Binds (writing port_file if configured) and serves on a background thread. Returns the
  // bound port. Throws StartupError when the address cannot be bound.
  std::uint16_t start();
  // Stops accepting and drops every connection; idempotent.
  void stop();

  // Binds and serves on the calling thread until SIGINT or SIGTERM. SIGHUP re-reads the
  // `limits` and `faults` sections of `config_path` (a bad file is reported and ignored).
  // Returns the exit status.
  int run_until_signalled(const std::string& config_path);

  std::uint16_t port() const;
  // What GET /sandbox/stats answers (JSON): per caller, requests by outcome and the highest
  // count in any 1 s / 60 s window; how often two requests for one sub-merchant overlapped.
  std::string stats_json() const;
  // Replaces limits and/or faults at runtime (also POST /sandbox/config). Thread-safe.
  void apply(const RuntimeUpdate& update);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd::sandbox
