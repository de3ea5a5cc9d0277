// The sandbox stays local (issue 13, item 13): a listen address other hosts can reach needs
// --allow-remote, because /sandbox/* is unauthenticated.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/host_scope.h"
#include "sandbox/sandbox_config.h"

using namespace callbackd;
using namespace callbackd::sandbox;

TEST_CASE("sandbox listen: loopback only, unless --allow-remote", "[sandbox][listen]") {
  const struct {
    const char* address;
    bool local;
  } rows[] = {
      {"127.0.0.1", true},        {"127.0.0.2", true}, {"::1", true},
      {"::ffff:127.0.0.1", true}, {"0.0.0.0", false},  {"::", false},
      {"::ffff:0.0.0.0", false},  {"10.0.0.5", false}, {"192.168.1.20", false},
      {"172.17.0.1", false},      {"fe80::1", false},  {"203.0.113.7", false},
      {"2001:db8::7", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.address);
    CHECK(binds_loopback_only(row.address) == row.local);
    SandboxConfig c;
    c.source = "sandbox.yaml";
    c.listen_address = row.address;
    c.port = 8443;
    const auto problem = remote_listen_problem(c);
    CHECK(problem.has_value() == !row.local);
    if (problem) {
      const std::string text = problem->to_string();
      CAPTURE(text);
      const bool v6 = std::string(row.address).find(':') != std::string::npos;
      CHECK(
          text.find("sandbox.yaml: listen: " + (v6 ? "[" + std::string(row.address) + "]" : std::string(row.address)) +
                    ":8443 is not a loopback address") == 0);
      CHECK(text.find("unauthenticated") != std::string::npos);
      CHECK(text.find("--allow-remote") != std::string::npos);
    }
    c.allow_remote = true;
    CHECK_FALSE(remote_listen_problem(c));
  }
}
