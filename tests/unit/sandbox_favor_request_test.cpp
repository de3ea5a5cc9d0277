// What the sandbox accepts as a favor/callbacks body, table-driven, and its config parser.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "sandbox/favor_request.h"
#include "sandbox/sandbox_config.h"

using namespace callbackd::sandbox;

TEST_CASE("valid bodies are accepted", "[sandbox][validation]") {
  auto r = parse_favor_set_request(R"({"mchid":"9856888","notify_url":"https://pay.weixin.qq.com"})");
  REQUIRE(r);
  CHECK(r->sub_mchid == "9856888");
  CHECK(r->notify_url == "https://pay.weixin.qq.com");
  CHECK_FALSE(r->push_switch);
  auto s = parse_favor_set_request(R"({"mchid":"1","notify_url":"u","switch":false,"extra":1})");
  REQUIRE(s);
  CHECK(s->push_switch == std::optional<bool>(false));
  // 256 characters of multi-byte UTF-8 are 256 characters, not 768 bytes.
  std::string url;
  for (int i = 0; i < 256; ++i) url += "\xE4\xB8\xAD";
  CHECK(parse_favor_set_request(R"({"mchid":"1","notify_url":")" + url + R"("})"));
}

TEST_CASE("invalid bodies name the field", "[sandbox][validation]") {
  const std::pair<std::string, std::string> cases[] = {
      {"", "body"},
      {"{", "body"},
      {"[1]", "body"},
      {R"({"notify_url":"https://a"})", "mchid"},
      {R"({"mchid":"","notify_url":"https://a"})", "mchid"},
      {R"({"mchid":123,"notify_url":"https://a"})", "mchid"},
      {R"({"mchid":"123456789012345678901","notify_url":"https://a"})", "mchid"},
      {R"({"mchid":"1"})", "notify_url"},
      {R"({"mchid":"1","notify_url":""})", "notify_url"},
      {R"({"mchid":"1","notify_url":")" + std::string(257, 'a') + R"("})", "notify_url"},
      {R"({"mchid":"1","notify_url":"\u00ff","switch":"yes"})", "switch"},
      {R"({"mchid":"1","notify_url":"a","switch":1})", "switch"},
      {"{\"mchid\":\"1\",\"notify_url\":\"\xff\"}", "body"},  // invalid UTF-8 is not JSON
  };
  for (const auto& [body, field] : cases) {
    INFO(body);
    auto r = parse_favor_set_request(body);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.starts_with(field + ":"));
  }
}

TEST_CASE("the query's mchid", "[sandbox][validation]") {
  CHECK(parse_favor_query("mchid=123").value() == "123");
  CHECK(parse_favor_query("a=b&mchid=9").value() == "9");
  CHECK_FALSE(parse_favor_query(""));
  CHECK_FALSE(parse_favor_query("mchid="));
  CHECK_FALSE(parse_favor_query("mchid=123456789012345678901"));
}

TEST_CASE("sandbox config: defaults derive the windows, and every problem is reported", "[sandbox][config]") {
  const std::string good = R"(
listen: "127.0.0.1:0"
tls: {certificate_file: s.pem, private_key_file: s.key}
platform: {key_id: PUB_KEY_ID_0100, private_key_file: p.pem}
merchants:
  - {mchid: "1900000001", serial_no: "ABC", public_key_file: m.pem}
limits: {set_per_minute: 600}
faults:
  seed: 7
  sub_merchants:
    "42": {kind: error, code: NOT_ENOUGH}
    "43": {kind: delay, delay_ms: 1500}
  random:
    - {kind: error, code: SYSTEM_ERROR, status: 503, probability: 0.25}
)";
  auto c = parse_sandbox_config(good, "t.yaml", "/keys");
  CHECK(c.tls_certificate_file == "/keys/s.pem");
  CHECK(c.limits.window_1s == 15);
  CHECK(c.limits.window_60s == 600);
  CHECK(c.faults.seed == 7);
  CHECK(c.faults.by_sub_merchant.at("43").delay == std::chrono::milliseconds(1500));
  CHECK(c.faults.random.at(0).status == 503);

  try {
    parse_sandbox_config("listen: nowhere\nbogus: 1\nfaults: {random: [{kind: explode, probability: 2}]}\n", "bad.yaml",
                         "");
    FAIL("expected StartupError");
  } catch (const callbackd::StartupError& e) {
    CHECK(e.problems().size() >= 5);  // listen, bogus, kind, probability, tls, platform
  }
}
