// callbackd-sandbox: thin on purpose; the server is sandbox_server.cpp, the keys come from
// scripts/sandbox-keys (see docs/sandbox.md).
#include <iostream>
#include <string>

#include "core/error.h"
#include "sandbox/sandbox_config.h"
#include "sandbox/sandbox_server.h"

namespace {

constexpr const char* kUsage =
    "usage: callbackd-sandbox serve [--allow-remote] CONFIG   serve until SIGINT/SIGTERM; SIGHUP reloads limits and faults\n"
    "       callbackd-sandbox check [--allow-remote] CONFIG   validate the config and load every key, then exit\n"
    "       callbackd-sandbox --help | --version\n"
    "--allow-remote: listen on a non-loopback address (its /sandbox/* endpoints are unauthenticated).\n"
    "Keys and certificates for a rehearsal: scripts/sandbox-keys DIR [MCHID...] (docs/sandbox.md).\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace callbackd;
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "--help" || cmd == "-h") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "--version") {
    std::cout << "callbackd-sandbox " << CALLBACKD_VERSION << "\n";
    return 0;
  }
  const bool allow_remote = argc == 4 && std::string(argv[2]) == "--allow-remote";
  if ((cmd != "serve" && cmd != "check") || argc != (allow_remote ? 4 : 3)) {
    std::cerr << kUsage;
    return 64;  // EX_USAGE
  }
  const std::string config_path = argv[argc - 1];
  try {
    sandbox::SandboxConfig config = sandbox::load_sandbox_config(config_path);
    config.allow_remote = allow_remote;
    sandbox::SandboxServer server(std::move(config));
    if (cmd == "check") {
      std::cout << "callbackd-sandbox: " << config_path << " is valid\n";
      return 0;
    }
    return server.run_until_signalled(config_path);
  } catch (const StartupError& e) {
    for (const auto& p : e.problems()) std::cerr << "callbackd-sandbox: " << p.to_string() << "\n";
    return 78;  // EX_CONFIG
  }
}
