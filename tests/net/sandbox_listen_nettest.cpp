// The sandbox stays local (issue 13, item 13): its /sandbox/* endpoints are unauthenticated,
// so it listens beyond loopback only when told to (--allow-remote; SandboxConfig::allow_remote).
// The process-level refusal (exit 78 from check and serve) is net/sandbox-process-test.
#include <catch2/catch.hpp>

#include "net/net_support.h"

using namespace nettest;

TEST_CASE("the sandbox refuses to listen on every interface without --allow-remote", "[net][sandbox][listen]") {
  try {
    sandbox::SandboxServer refused(sandbox_config("0.0.0.0"));
    FAIL("expected a StartupError");
  } catch (const StartupError& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK_THAT(message, Catch::Matchers::StartsWith("nettest: listen: 0.0.0.0:0 is not a loopback address"));
    CHECK_THAT(message, Catch::Matchers::Contains("--allow-remote"));
  }
  auto config = sandbox_config("0.0.0.0");
  config.allow_remote = true;
  Sandbox sb(config);
  auto res =
      http::send_blocking(client_config(sb.port()), signed_post(tenant(), "1900000103", "https://example.com/cb"));
  REQUIRE(res);
  CHECK(res->status == 200);
}
