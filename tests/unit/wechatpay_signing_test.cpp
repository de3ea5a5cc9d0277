// Request signing: the canonical message, SHA256withRSA reproducing the shared vectors byte for
// byte, an independent check with the openssl command-line tool, the nonce and the header.
#include <catch2/catch.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "core/wechatpay/authorization.h"
#include "core/wechatpay/encoding.h"
#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/signing.h"
#include "wechatpay_test_support.h"

using namespace callbackd;
using namespace callbackd::wechatpay;
using callbackd::test::read_file;
using callbackd::test::vector_path;

namespace {

// signatures.txt: "# comment" lines, then "FILE BASE64" lines.
std::map<std::string, std::string> expected_signatures() {
  std::map<std::string, std::string> out;
  std::istringstream in(read_file(vector_path("signatures.txt")));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.find(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

}  // namespace

TEST_CASE("request_message builds METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n", "[wechatpay][signing]") {
  struct Row {
    const char* method;
    const char* uri;
    std::int64_t ts;
    const char* nonce;
    const char* body;
    const char* expected;
  };
  const Row rows[] = {
      {"POST", "/v3/marketing/favor/callbacks", 1554208460, "N", "{}",
       "POST\n/v3/marketing/favor/callbacks\n1554208460\nN\n{}\n"},
      {"GET", "/v3/certificates", 1554208460, "N", "", "GET\n/v3/certificates\n1554208460\nN\n\n"},
      {"GET", "/v3/marketing/favor/callbacks?mchid=9856888", 1, "N", "",
       "GET\n/v3/marketing/favor/callbacks?mchid=9856888\n1\nN\n\n"},
      // A value that already ends in "\n" still gets another one.
      {"POST", "/x", 2, "N", "body\n", "POST\n/x\n2\nN\nbody\n\n"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.expected);
    CHECK(request_message(row.method, row.uri, row.ts, row.nonce, row.body) == row.expected);
  }
  CHECK(response_message("1554208460", "N", "") == "1554208460\nN\n\n");
  CHECK(response_message("1554208460", "N", "{\"a\":1}") == "1554208460\nN\n{\"a\":1}\n");
}

TEST_CASE("the signer reproduces the shared vectors byte for byte", "[wechatpay][signing][vectors]") {
  const PrivateKey key = test::go_test_private_key();
  const auto expected = expected_signatures();
  REQUIRE(expected.size() == 2);
  for (const auto& [file, signature] : expected) {
    CAPTURE(file);
    const auto got = sign_sha256_rsa(key, read_file(vector_path(file)));
    REQUIRE(got.ok());
    CHECK(got.value() == signature);
  }
}

TEST_CASE("the vector messages are what request_message builds", "[wechatpay][signing][vectors]") {
  const std::string body = favor_callbacks_request_body("9856888", "https://pay.weixin.qq.com", true);
  CHECK(request_message("POST", kFavorCallbacksPath, 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", body) ==
        read_file(vector_path("post_favor_callbacks.msg")));
  CHECK(request_message("GET", "/v3/certificates", 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", "") ==
        read_file(vector_path("get_certificates.msg")));
}

TEST_CASE("a PKCS#1 key signs identically to the same key in PKCS#8", "[wechatpay][signing][keys]") {
  const PrivateKey pkcs8 = test::go_test_private_key();
  const PrivateKey pkcs1 = test::private_key_fixture("go_test_private_key_pkcs1.pem");
  const std::string message = read_file(vector_path("post_favor_callbacks.msg"));
  CHECK(sign_sha256_rsa(pkcs1, message).value() == sign_sha256_rsa(pkcs8, message).value());
}

TEST_CASE("favor_callbacks_request_body serialises once, switch only when set", "[wechatpay][signing]") {
  CHECK(favor_callbacks_request_body("9856888", "https://pay.weixin.qq.com", std::nullopt) ==
        R"({"mchid":"9856888","notify_url":"https://pay.weixin.qq.com"})");
  CHECK(favor_callbacks_request_body("9856888", "https://pay.weixin.qq.com", true) ==
        R"({"mchid":"9856888","notify_url":"https://pay.weixin.qq.com","switch":true})");
  CHECK(favor_callbacks_request_body("1", "https://a/b?c=d", false) ==
        R"({"mchid":"1","notify_url":"https://a/b?c=d","switch":false})");
  // Escaping never throws, even on bytes validation would have refused.
  CHECK(favor_callbacks_request_body("1", "https://a/\"\\\x01", std::nullopt) ==
        R"({"mchid":"1","notify_url":"https://a/\"\\\u0001"})");
  CHECK(favor_callbacks_request_body("1", "https://a/\xff", std::nullopt) ==
        "{\"mchid\":\"1\",\"notify_url\":\"https://a/\xEF\xBF\xBD\"}");
}

TEST_CASE("authorization_header formats the five fields and verifies round trip", "[wechatpay][signing]") {
  const MerchantCredentials merchant{"1900009191", "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
                                     test::go_test_private_key()};
  const std::string body = favor_callbacks_request_body("9856888", "https://pay.weixin.qq.com", true);
  const auto header =
      authorization_header(merchant, "POST", kFavorCallbacksPath, body, 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242");
  REQUIRE(header.ok());
  const auto expected = expected_signatures().at("post_favor_callbacks.msg");
  CHECK(header.value() ==
        "WECHATPAY2-SHA256-RSA2048 mchid=\"1900009191\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\","
        "timestamp=\"1554208460\",serial_no=\"1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C\",signature=\"" +
            expected + "\"");

  const auto fields = parse_authorization(header.value());
  REQUIRE(fields.ok());
  const VerificationKey pub = test::verification_key_fixture("go_test_public_key.pem");
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1554208460));
  CHECK(verify_request(fields.value(), pub, "POST", kFavorCallbacksPath, body, at) == RequestCheck::valid);
  CHECK(verify_request(fields.value(), pub, "POST", kFavorCallbacksPath, body + " ", at) ==
        RequestCheck::bad_signature);
  CHECK(verify_request(fields.value(), pub, "POST", "/v3/marketing/favor/callbacks?x", body, at) ==
        RequestCheck::bad_signature);
  CHECK(verify_request(fields.value(), pub, "POST", kFavorCallbacksPath, body, at + std::chrono::seconds(299)) ==
        RequestCheck::valid);
  CHECK(verify_request(fields.value(), pub, "POST", kFavorCallbacksPath, body, at + std::chrono::seconds(300)) ==
        RequestCheck::stale_timestamp);
  CHECK(verify_request(fields.value(), pub, "POST", kFavorCallbacksPath, body, at - std::chrono::seconds(300)) ==
        RequestCheck::stale_timestamp);
  auto mangled = fields.value();
  mangled.signature = "not base64!";
  CHECK(verify_request(mangled, pub, "POST", kFavorCallbacksPath, body, at) == RequestCheck::bad_base64);
}

TEST_CASE("a fresh signature verifies with the openssl command-line tool", "[wechatpay][signing][openssl]") {
  test::TempDir dir;
  const PrivateKey key = test::go_test_private_key();
  const auto nonce = make_nonce();
  REQUIRE(nonce.ok());
  const std::string message = request_message("POST", kFavorCallbacksPath, 1700000000, nonce.value(),
                                              favor_callbacks_request_body("123", "https://example.com/n", false));
  const auto signature = sign_sha256_rsa(key, message);
  REQUIRE(signature.ok());
  const std::string msg_path = dir.write("msg", message, 0644);
  const std::string sig_path = dir.write("sig.bin", base64_decode(signature.value()).value(), 0644);
  const std::string pub_path = dir.write("pub.pem", read_file(vector_path("go_test_public_key.pem")), 0644);
  const std::string out_path = (dir.path() / "out.txt").string();

  const std::string verify = "openssl dgst -sha256 -verify " + pub_path + " -signature " + sig_path + " " + msg_path;
  CHECK(std::system((verify + " > " + out_path + " 2>&1").c_str()) == 0);
  CHECK(read_file(out_path) == "Verified OK\n");

  // And the independent verifier refuses a tampered message, so the check above means something.
  dir.write("msg", message + "x", 0644);
  CHECK(std::system((verify + " > " + out_path + " 2>&1").c_str()) != 0);
}

TEST_CASE("make_nonce: 32 chars of [0-9A-Za-z], fresh each time", "[wechatpay][signing][nonce]") {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const auto nonce = make_nonce();
    REQUIRE(nonce.ok());
    REQUIRE(nonce.value().size() == kNonceLength);
    for (char c : nonce.value()) REQUIRE(((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')));
    seen.insert(nonce.value());
  }
  CHECK(seen.size() == 200);
}

TEST_CASE("make_nonce rejects bytes >= 248 instead of reducing them", "[wechatpay][signing][nonce]") {
  // Bytes 248..255 must be skipped: with modulo they would map to '0'..'7' and bias those.
  int calls = 0;
  const RandomBytes biased_then_clean = [&calls](unsigned char* out, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) out[i] = calls == 0 ? static_cast<unsigned char>(248 + i % 8) : 61;
    ++calls;
    return true;
  };
  const auto nonce = make_nonce(biased_then_clean);
  REQUIRE(nonce.ok());
  CHECK(nonce.value() == std::string(32, 'z'));
  CHECK(calls == 2);

  // Each accepted byte b maps to alphabet[b % 62]: 0 -> '0', 62 -> '0', 247 -> 'z' (247 % 62 = 61).
  const RandomBytes fixed = [](unsigned char* out, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<unsigned char>(i % 2 == 0 ? 0 : 247);
    return true;
  };
  CHECK(make_nonce(fixed).value() == "0z0z0z0z0z0z0z0z0z0z0z0z0z0z0z0z");

  // Over all 248 accepted byte values every character is produced by exactly four: no bias.
  std::map<char, int> histogram;
  for (int value = 0; value < 248; ++value) {
    const RandomBytes constant = [value](unsigned char* out, std::size_t size) {
      for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<unsigned char>(value);
      return true;
    };
    const std::string repeated = make_nonce(constant).value();
    REQUIRE(repeated == std::string(32, repeated[0]));
    ++histogram[repeated[0]];
  }
  REQUIRE(histogram.size() == 62);
  for (const auto& [c, n] : histogram) CHECK(n == 4);
}

TEST_CASE("make_nonce reports a failing or stuck generator", "[wechatpay][signing][nonce]") {
  const RandomBytes failing = [](unsigned char*, std::size_t) { return false; };
  CHECK(make_nonce(failing).error().message == "the random number generator failed");
  const RandomBytes stuck = [](unsigned char* out, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) out[i] = 0xFF;
    return true;
  };
  CHECK(make_nonce(stuck).error().message == "the random number generator returned biased output");
}

TEST_CASE("authorization_header refuses values that would break the header", "[wechatpay][signing]") {
  const PrivateKey key = test::go_test_private_key();
  const char* bad[] = {"", "1900\"009191", "1900\r\nX-Injected: 1", "19\\00", "\xe4\xb8\xad"};
  for (const char* value : bad) {
    CAPTURE(value);
    const MerchantCredentials bad_mchid{value, "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", key};
    const MerchantCredentials bad_serial{"1900009191", value, key};
    const std::string expected =
        "mchid, serial_no and nonce must be non-empty printable ASCII without quotes or backslashes";
    CHECK(authorization_header(bad_mchid, "POST", "/x", "", 1, "nonce").error().message == expected);
    CHECK(authorization_header(bad_serial, "POST", "/x", "", 1, "nonce").error().message == expected);
    const MerchantCredentials good{"1900009191", "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", key};
    CHECK(authorization_header(good, "POST", "/x", "", 1, value).error().message == expected);
  }
}

TEST_CASE("merchant_serial_no_problem names the classic serial mistakes", "[wechatpay][signing]") {
  CHECK_FALSE(merchant_serial_no_problem("1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C").has_value());
  CHECK_FALSE(merchant_serial_no_problem("0A0B").has_value());
  CHECK(merchant_serial_no_problem("") == std::optional<std::string>("the merchant certificate serial is empty"));
  CHECK(merchant_serial_no_problem("1dde55ad98ed71d6edd4a4a16996de7b47773a8c") ==
        std::optional<std::string>("the merchant certificate serial must be uppercase hex"));
  CHECK(merchant_serial_no_problem("170634221573479245236418233087476390349004618380") ==
        std::optional<std::string>("the merchant certificate serial looks decimal; WeChat Pay expects it in uppercase "
                                   "hex (openssl x509 -in apiclient_cert.pem -noout -serial)"));
  CHECK(merchant_serial_no_problem("1DDE:55") ==
        std::optional<std::string>("the merchant certificate serial must be hexadecimal (0-9, A-F)"));
  CHECK(merchant_serial_no_problem(std::string(41, 'A')) ==
        std::optional<std::string>("the merchant certificate serial is longer than 40 hex digits"));
}
