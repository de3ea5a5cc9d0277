// The Authorization header parser (sandbox side): accepts what SDKs send, refuses the rest with
// a message that never echoes much of the input.
#include <catch2/catch.hpp>

#include "core/wechatpay/authorization.h"

using namespace callbackd::wechatpay;
using Catch::Matchers::Equals;

namespace {
const std::string kGood =
    R"(WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",)"
    R"(timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2ln+/==")";
}

TEST_CASE("parse_authorization accepts the SDKs' forms", "[wechatpay][authorization]") {
  const auto parsed = parse_authorization(kGood);
  REQUIRE(parsed.ok());
  CHECK(parsed->caller_mchid == "1900009191");
  CHECK(parsed->nonce_str == "593BEC0C930BF1AFEB40B4A08C8FB242");
  CHECK(parsed->timestamp == 1554208460);
  CHECK(parsed->serial_no == "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C");
  CHECK(parsed->signature == "c2ln+/==");

  const char* accepted[] = {
      // any field order
      R"(WECHATPAY2-SHA256-RSA2048 signature="s",serial_no="S",timestamp="1",nonce_str="n",mchid="m")",
      // several spaces after the scheme, spaces around commas (some SDKs write ", ")
      R"(WECHATPAY2-SHA256-RSA2048   mchid="m", nonce_str="n" ,timestamp="1",  serial_no="S",signature="s")",
      // trailing spaces
      R"(WECHATPAY2-SHA256-RSA2048 mchid="m",nonce_str="n",timestamp="1",serial_no="S",signature="s"  )",
  };
  for (const char* header : accepted) {
    CAPTURE(header);
    CHECK(parse_authorization(header).ok());
  }
}

TEST_CASE("parse_authorization refuses malformed and hostile headers, one message each", "[wechatpay][authorization]") {
  struct Row {
    std::string header;
    std::string message;
  };
  const std::string s = "WECHATPAY2-SHA256-RSA2048 ";
  const std::string rest = R"(nonce_str="n",timestamp="1",serial_no="S",signature="s")";
  const Row rows[] = {
      {"", "Authorization scheme is not WECHATPAY2-SHA256-RSA2048: \"\""},
      {"Bearer abc", "Authorization scheme is not WECHATPAY2-SHA256-RSA2048: \"Bearer abc\""},
      {"wechatpay2-sha256-rsa2048 " + rest,
       "Authorization scheme is not WECHATPAY2-SHA256-RSA2048: \"wechatpay2-sha256-rsa2048 nonce_…(81 bytes)\""},
      {"WECHATPAY2-SHA256-RSA2048", "Authorization scheme must be followed by a space"},
      {"WECHATPAY2-SHA256-RSA2048,mchid=\"1\"", "Authorization scheme must be followed by a space"},
      {s, "Authorization: expected a field name at offset 26"},
      {s + rest, "Authorization: field mchid is missing"},
      {s + R"(mchid="1",)" + rest + R"(,mchid="2")", "Authorization: field mchid appears twice"},
      {s + R"(mchid="1",realm="x",)" + rest, "Authorization: unknown field \"realm\""},
      {s + R"(mchid=1,)" + rest, "Authorization: field mchid must be followed by =\"value\""},
      {s + R"(mchid ="1",)" + rest, "Authorization: field mchid must be followed by =\"value\""},
      {s + R"(mchid="1)", "Authorization: value of mchid is unterminated or holds a forbidden character"},
      {s + "mchid=\"1\x01\"," + rest, "Authorization: value of mchid is unterminated or holds a forbidden character"},
      {s + "mchid=\"1\\\"2\"," + rest, "Authorization: value of mchid is unterminated or holds a forbidden character"},
      {s + "mchid=\"\xe4\xb8\xad\"," + rest,
       "Authorization: value of mchid is unterminated or holds a forbidden character"},
      {s + R"(mchid="",)" + rest, "Authorization: field mchid is empty"},
      {s + R"(mchid="1";)" + rest, "Authorization: expected ',' at offset 35"},
      {s + R"(mchid="1",)" + rest + ",", "Authorization: expected a field name at offset 92"},
      {s + R"(mchid="1",)" + rest + " x", "Authorization: expected ',' at offset 92"},
      {s + R"(mchid="1",nonce_str="n",timestamp="-1",serial_no="S",signature="s")",
       "Authorization: timestamp \"-1\" is not Unix seconds"},
      {s + R"(mchid="1",nonce_str="n",timestamp="1e9",serial_no="S",signature="s")",
       "Authorization: timestamp \"1e9\" is not Unix seconds"},
      {s + R"(mchid="1",nonce_str="n",timestamp="9999999999999999999",serial_no="S",signature="s")",
       "Authorization: timestamp \"9999999999999999999\" is not Unix seconds"},
      {s + R"(mchid="1",nonce_str="n",timestamp="1",serial_no="S",signature="s")" + std::string(5000, ' '),
       "Authorization header is 5091 bytes, more than 4096"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.header);
    const auto parsed = parse_authorization(row.header);
    REQUIRE_FALSE(parsed.ok());
    CHECK_THAT(parsed.error().message, Equals(row.message));
  }
}
