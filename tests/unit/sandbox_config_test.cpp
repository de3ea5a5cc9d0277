// The sandbox's config is read like the daemon's (core/yaml_reader.h): a key written twice is
// refused, naming the key and its line, where yaml-cpp alone would keep one value silently.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/error.h"
#include "sandbox/sandbox_config.h"

using namespace callbackd;
using namespace callbackd::sandbox;

namespace {

// The problems of a config that must be refused, one "where: what" line each.
std::vector<std::string> refused(const std::string& yaml) {
  try {
    parse_sandbox_config(yaml, "sandbox.yaml", "/keys");
  } catch (const StartupError& e) {
    std::vector<std::string> lines;
    for (const auto& p : e.problems()) lines.push_back(p.where + ": " + p.what);
    return lines;
  }
  FAIL("expected a StartupError");
  return {};
}

bool has(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

const std::string kValidTail =
    "tls:\n"
    "  certificate_file: tls.crt\n"
    "  private_key_file: tls.key\n"
    "platform:\n"
    "  key_id: PUB_KEY_ID_0001\n"
    "  private_key_file: platform.key\n";

}  // namespace

TEST_CASE("sandbox config: a key written twice is refused with its line", "[sandbox][config]") {
  SECTION("at the top level") {
    const auto lines = refused("listen: 127.0.0.1:0\nlisten: 127.0.0.1:1\n" + kValidTail);
    INFO(lines.size());
    CHECK(has(lines, "sandbox.yaml: listen: the key appears more than once (line 2)"));
  }
  SECTION("in a section") {
    const auto lines = refused(kValidTail + "  key_id: PUB_KEY_ID_0002\n");
    CHECK(has(lines, "sandbox.yaml: platform.key_id: the key appears more than once (line 7)"));
  }
}

TEST_CASE("sandbox config: the same keys once each are accepted", "[sandbox][config]") {
  const SandboxConfig c = parse_sandbox_config("listen: 127.0.0.1:0\n" + kValidTail, "sandbox.yaml", "/keys");
  CHECK(c.platform.key_id == "PUB_KEY_ID_0001");
  CHECK(c.tls_certificate_file == "/keys/tls.crt");
}

TEST_CASE("sandbox config: a syntax error names the file, line and column", "[sandbox][config]") {
  const auto lines = refused("listen: 127.0.0.1:0\ntls: [\n");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].starts_with("sandbox.yaml:"));
  CHECK(lines[0].find("not valid YAML") != std::string::npos);
}
