// Strict base64 and bounded excerpts.
#include <catch2/catch.hpp>

#include "core/wechatpay/encoding.h"

using namespace callbackd::wechatpay;

TEST_CASE("base64 round-trips the RFC 4648 vectors", "[wechatpay][encoding]") {
  const std::pair<const char*, const char*> rows[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
      {"\xff\xfe\xfd", "//79"},
      {"\xfb\xff", "+/8="},
  };
  for (const auto& [plain, encoded] : rows) {
    CAPTURE(encoded);
    CHECK(base64_encode(plain) == encoded);
    CHECK(base64_decode(encoded) == std::optional<std::string>(plain));
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  CHECK(base64_decode(base64_encode(all)) == std::optional<std::string>(all));
}

TEST_CASE("base64_decode is strict", "[wechatpay][encoding]") {
  const char* rejected[] = {
      "Zg",    "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm=v", "Zm9v\n", " Zm9v", "Zm9v ", "Zm9-", "Zm9_",
      "Zh==",  // non-zero bits under the padding: not the canonical form of "f"
      "Zm9=",  // same, two-byte case
      "Zg\0=",
  };
  for (const char* text : rejected) {
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text).has_value());
  }
  CHECK_FALSE(base64_decode(std::string_view("Zg=\0", 4)).has_value());
}

TEST_CASE("excerpt bounds, cleans and marks cuts", "[wechatpay][encoding]") {
  CHECK(excerpt("short", 10) == "short");
  CHECK(excerpt("exactly10!", 10) == "exactly10!");
  CHECK(excerpt("0123456789A", 10) == "0123456789…(11 bytes)");
  CHECK(excerpt("a\r\nb\x7f", 10) == "a??b?");
  CHECK(excerpt("中文", 4) == "中…(6 bytes)");
  CHECK(excerpt("中文", 2) == "…(6 bytes)");
  CHECK(excerpt("", 0).empty());
  // C1 controls and bidi formatting characters would reorder or hide what an operator reads.
  CHECK(excerpt("a\u202Egnp.exe\u202Cb", 40) == "a?gnp.exe?b");  // RIGHT-TO-LEFT OVERRIDE, POP
  CHECK(excerpt("\u2066x\u2069\u200E\u200F\u061C", 40) == "?x????");
  CHECK(excerpt("\u0085\u009F\u00A0é", 40) == "??\u00A0é");  // NEL, APC; NBSP and é are kept
  CHECK(excerpt("\u202E", 2) == "…(3 bytes)");               // cut before the override: nothing of it shown
  CHECK(excerpt("\xE2\x80", 10) == "\xE2\x80");              // a truncated sequence is not read past its end
}
