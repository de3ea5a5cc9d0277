// The sandbox's config is read like the daemon's (core/yaml_reader.h): a key written twice is
// refused, naming the key and its line, where yaml-cpp alone would keep one value silently.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/config.h"
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

// One reader for both configs (core/yaml_reader.h): the same mistake reads the same in the
// daemon's config and in the sandbox's, differing only in the file, the keys and the docs.
TEST_CASE("sandbox config: a typo'd key and a word for a number are worded as in the daemon's config",
          "[sandbox][config]") {
  const auto lines = refused("limits:\n  set_per_minut: 60\n  window_1s: many\n" + kValidTail);
  CHECK(has(lines, "sandbox.yaml: limits.set_per_minut: unknown key"));
  CHECK(has(lines, "sandbox.yaml: limits.window_1s: expected a whole number, found 'many'"));
  try {
    parse_sandbox_config("limits:\n  set_per_minut: 60\n" + kValidTail, "sandbox.yaml", "/keys");
    FAIL("expected a StartupError");
  } catch (const StartupError& e) {
    REQUIRE(e.problems().size() == 1);
    CHECK(e.problems()[0].fix ==
          "the keys accepted in 'limits' are: set_per_minute, window_1s, window_60s, per_source_address_per_minute, "
          "get_per_second, max_body_bytes, idle_timeout_ms, timeout_hold_ms (see docs/sandbox.md, Configuration)");
  }
  // The daemon's words for the same two mistakes (tests/data/config/invalid/).
  try {
    parse_config("database:\n  url: x\nreconciler:\n  poll_intervl: 5s\n  max_in_flight_per_tenant: many\n",
                 "callbackd.yaml", [](const char*) -> std::optional<std::string> { return std::nullopt; });
    FAIL("expected a StartupError");
  } catch (const StartupError& e) {
    REQUIRE(e.problems().size() == 2);
    CHECK(
        e.problems()[0].to_string().starts_with("callbackd.yaml: reconciler.poll_intervl: unknown key (fix: the "
                                                "keys accepted in 'reconciler' are: poll_interval, "));
    CHECK(e.problems()[1].to_string() ==
          "callbackd.yaml: reconciler.max_in_flight_per_tenant: expected a whole number, found 'many'");
  }
}

TEST_CASE("sandbox config: a sub-merchant's fault written twice is refused", "[sandbox][config]") {
  const auto lines = refused(kValidTail +
                             "faults:\n"
                             "  sub_merchants:\n"
                             "    \"1900000101\": {kind: reset}\n"
                             "    \"1900000101\": {kind: delay, delay_ms: 10}\n");
  CHECK(has(lines, "sandbox.yaml: faults.sub_merchants.1900000101: the key appears more than once (line 10)"));
}

TEST_CASE("sandbox config: certificate mode, a rotation and certificate faults", "[sandbox][config]") {
  const std::string platform =
      "tls:\n"
      "  certificate_file: tls.crt\n"
      "  private_key_file: tls.key\n"
      "platform:\n"
      "  key_id: PUB_KEY_ID_0001\n"
      "  private_key_file: platform.key\n"
      "  certificate_file: platform.pem\n"
      "  rotation:\n"
      "    private_key_file: platform2.key\n"
      "    certificate_file: platform2.pem\n"
      "    listed_after_ms: 1000\n"
      "    switch_after_ms: 3000\n"
      "merchants:\n"
      "  - mchid: \"1900000003\"\n"
      "    serial_no: 0A0B\n"
      "    public_key_file: m3.pem\n"
      "    apiv3_key_file: m3.apiv3\n"
      "faults:\n"
      "  certificates:\n"
      "    \"1900000003\": bad_tag\n"
      "    \"1900000004\": unlisted_signer\n";
  const SandboxConfig c = parse_sandbox_config(platform, "sandbox.yaml", "/keys");
  REQUIRE(c.platform.rotation);
  CHECK(c.platform.rotation->certificate_file == "/keys/platform2.pem");
  CHECK(c.platform.rotation->listed_after == std::chrono::milliseconds(1000));
  CHECK(c.platform.rotation->switch_after == std::chrono::milliseconds(3000));
  REQUIRE(c.merchants.size() == 1);
  CHECK(c.merchants[0].apiv3_key_file == "/keys/m3.apiv3");
  CHECK(c.faults.certificates_by_caller.at("1900000003") == CertificateFault::bad_tag);
  CHECK(c.faults.certificates_by_caller.at("1900000004") == CertificateFault::unlisted_signer);

  SECTION("an unknown certificate fault is named with the choices") {
    const auto lines = refused(kValidTail + "faults:\n  certificates:\n    \"1900000003\": bad_nonce\n");
    CHECK(has(lines, "sandbox.yaml: faults.certificates.1900000003: unknown certificate fault 'bad_nonce'"));
  }
  SECTION("certificate mode needs the platform certificate") {
    const auto lines =
        refused(kValidTail +
                "merchants:\n  - mchid: \"1900000003\"\n    serial_no: 0A0B\n    public_key_file: m.pem\n"
                "    apiv3_key_file: m.apiv3\n");
    CHECK(has(lines,
              "sandbox.yaml: platform.certificate_file: required when a merchant has an apiv3_key_file or "
              "platform.rotation is set (certificate mode)"));
  }
  SECTION("a certificate listed after it starts signing is refused") {
    std::string late = platform;
    late.replace(late.find("listed_after_ms: 1000"), 21, "listed_after_ms: 5000");
    const auto lines = refused(late);
    CHECK(has(lines,
              "sandbox.yaml: platform.rotation.listed_after_ms: is after switch_after_ms: a certificate is "
              "listed before it signs"));
  }
}
