// Response verification against a per-tenant KeySet (public-key mode and platform certificates,
// several at once), and the sandbox's response signer feeding it.
#include <catch2/catch.hpp>

#include "core/wechatpay/signing.h"
#include "core/wechatpay/verification.h"
#include "wechatpay_test_support.h"

using namespace callbackd;
using namespace callbackd::wechatpay;
using Catch::Matchers::Equals;
using std::chrono::seconds;
using std::chrono::system_clock;

namespace {

constexpr std::int64_t kTs = 1700000000;
const system_clock::time_point kNow{seconds(kTs)};
const std::string kBody = R"({"update_time":"2015-05-20T13:29:35.120+08:00","notify_url":"https://pay.weixin.qq.com"})";
const std::string kPubKeyId = "PUB_KEY_ID_0112345678902024010100000000000000";
const std::string kCertSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";

ResponseHeaders headers_from(const ResponseSignature& s) {
  ResponseHeaders h;
  h.timestamp = s.timestamp;
  h.nonce = s.nonce;
  h.signature = s.signature;
  h.serial = s.serial;
  h.signature_type = s.signature_type;
  h.request_id = "08F78BB5AF0610D302A7B4DB08E5E4F0";
  return h;
}

// The tenant accepts the go key as a public key AND as a platform certificate, plus a second,
// unrelated certificate (rotation: two valid at once).
KeySet tenant_keys() {
  KeySet keys;
  REQUIRE(keys.add(kPubKeyId, test::verification_key_fixture("go_test_public_key.pem")).ok());
  REQUIRE(keys.add_certificate(test::verification_key_fixture("go_test_cert.pem")).ok());
  REQUIRE(keys.add_certificate(test::verification_key_fixture("second_cert.pem")).ok());
  return keys;
}

ResponseSignature signed_by(const PrivateKey& key, const std::string& key_id, const std::string& body = kBody,
                            std::int64_t ts = kTs) {
  auto s = sign_response(key, key_id, body, ts, "N0nce0123456789abcdefABCDEF01234");
  REQUIRE(s.ok());
  return s.value();
}

}  // namespace

TEST_CASE("sign_response produces the Wechatpay-* header values", "[wechatpay][verification]") {
  const auto s = signed_by(test::go_test_private_key(), kPubKeyId);
  CHECK(s.timestamp == "1700000000");
  CHECK(s.nonce == "N0nce0123456789abcdefABCDEF01234");
  CHECK(s.serial == kPubKeyId);
  CHECK(s.signature_type == "WECHATPAY2-SHA256-RSA2048");
  // The same primitive as requests, over "TIMESTAMP\nNONCE\nBODY\n".
  CHECK(s.signature ==
        sign_sha256_rsa(test::go_test_private_key(), "1700000000\nN0nce0123456789abcdefABCDEF01234\n" + kBody + "\n")
            .value());
}

TEST_CASE("verify_response accepts a good signature under every registered key", "[wechatpay][verification]") {
  const KeySet keys = tenant_keys();
  const PrivateKey go = test::go_test_private_key();
  const PrivateKey second = test::private_key_fixture("second_rsa2048.pem");
  struct Row {
    const PrivateKey* key;
    std::string serial_sent;
    std::string body;
  };
  const Row rows[] = {
      {&go, kPubKeyId, kBody},
      {&go, kCertSerial, kBody},
      {&go, "5157f09efdc096de15ebe81a47057a7232f1b8e1", kBody},  // lower-case serial
      {&second, "0A0B0C0D", kBody},                              // the rotated-in certificate
      {&second, "A0B0C0D", kBody},                               // without the leading zero
      {&go, kPubKeyId, ""},                                      // empty body: "TS\nNONCE\n\n"
  };
  for (const auto& row : rows) {
    CAPTURE(row.serial_sent);
    const auto headers = headers_from(signed_by(*row.key, row.serial_sent, row.body));
    const auto verified = verify_response(keys, headers, row.body, kNow);
    REQUIRE(verified.ok());
    CHECK(verified->key_id == row.serial_sent);
  }
  // Wechatpay-Signature-Type is optional on the wire.
  auto headers = headers_from(signed_by(go, kPubKeyId));
  headers.signature_type.reset();
  CHECK(verify_response(keys, headers, kBody, kNow).ok());
}

TEST_CASE("verify_response: each failure is a distinct named error with a message", "[wechatpay][verification]") {
  const KeySet keys = tenant_keys();
  const PrivateKey go = test::go_test_private_key();
  const ResponseHeaders good = headers_from(signed_by(go, kPubKeyId));
  struct Row {
    const char* name;
    ResponseHeaders headers;
    std::string body;
    system_clock::time_point now;
    VerifyError::Kind kind;
    std::string message;
  };
  auto with = [&](auto change) {
    ResponseHeaders h = good;
    change(h);
    return h;
  };
  const auto known = "known: 0A0B0C0D, 5157F09EFDC096DE15EBE81A47057A7232F1B8E1, " + kPubKeyId;
  const Row rows[] = {
      {"no timestamp", with([](auto& h) { h.timestamp.reset(); }), kBody, kNow, VerifyError::Kind::missing_header,
       "response has no Wechatpay-Timestamp header"},
      {"no nonce", with([](auto& h) { h.nonce.reset(); }), kBody, kNow, VerifyError::Kind::missing_header,
       "response has no Wechatpay-Nonce header"},
      {"no signature", with([](auto& h) { h.signature.reset(); }), kBody, kNow, VerifyError::Kind::missing_header,
       "response has no Wechatpay-Signature header"},
      {"empty serial", with([](auto& h) { h.serial = ""; }), kBody, kNow, VerifyError::Kind::missing_header,
       "response has no Wechatpay-Serial header"},
      {"other type", with([](auto& h) { h.signature_type = "WECHATPAY2-SM2-WITH-SM3"; }), kBody, kNow,
       VerifyError::Kind::unsupported_signature_type,
       "unsupported Wechatpay-Signature-Type \"WECHATPAY2-SM2-WITH-SM3\" (expected WECHATPAY2-SHA256-RSA2048)"},
      {"timestamp not digits", with([](auto& h) { h.timestamp = "17e8"; }), kBody, kNow,
       VerifyError::Kind::bad_timestamp, "Wechatpay-Timestamp \"17e8\" is not Unix seconds"},
      {"timestamp negative", with([](auto& h) { h.timestamp = "-1700000000"; }), kBody, kNow,
       VerifyError::Kind::bad_timestamp, "Wechatpay-Timestamp \"-1700000000\" is not Unix seconds"},
      {"timestamp overflow", with([](auto& h) { h.timestamp = std::string(40, '9'); }), kBody, kNow,
       VerifyError::Kind::bad_timestamp, "Wechatpay-Timestamp \"" + std::string(40, '9') + "\" is not Unix seconds"},
      {"300 s late", good, kBody, kNow + seconds(300), VerifyError::Kind::stale_timestamp,
       "Wechatpay-Timestamp 1700000000 is 300 s away from our clock (limit 300 s); check NTP on this machine"},
      {"300 s early", good, kBody, kNow - seconds(300), VerifyError::Kind::stale_timestamp,
       "Wechatpay-Timestamp 1700000000 is 300 s away from our clock (limit 300 s); check NTP on this machine"},
      {"unknown serial", with([](auto& h) { h.serial = "PUB_KEY_ID_OTHER"; }), kBody, kNow,
       VerifyError::Kind::unknown_serial,
       "Wechatpay-Serial \"PUB_KEY_ID_OTHER\" is not a key of this tenant (" + known + ")"},
      {"bad base64", with([](auto& h) { h.signature = "***"; }), kBody, kNow, VerifyError::Kind::bad_base64,
       "Wechatpay-Signature is not valid base64"},
      {"body changed", good, kBody + " ", kNow, VerifyError::Kind::bad_signature,
       "Wechatpay-Signature does not verify under key \"" + kPubKeyId + "\""},
      {"nonce changed", with([](auto& h) { h.nonce = "other"; }), kBody, kNow, VerifyError::Kind::bad_signature,
       "Wechatpay-Signature does not verify under key \"" + kPubKeyId + "\""},
      {"wrong key for serial", headers_from(signed_by(test::private_key_fixture("second_rsa2048.pem"), kPubKeyId)),
       kBody, kNow, VerifyError::Kind::bad_signature,
       "Wechatpay-Signature does not verify under key \"" + kPubKeyId + "\""},
      {"truncated signature", with([](auto& h) { h.signature = h.signature->substr(0, 340); }), kBody, kNow,
       VerifyError::Kind::bad_signature, "Wechatpay-Signature does not verify under key \"" + kPubKeyId + "\""},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    const auto verified = verify_response(keys, row.headers, row.body, row.now);
    REQUIRE_FALSE(verified.ok());
    CHECK(verified.error().kind == row.kind);
    CHECK_THAT(verified.error().message, Equals(row.message));
  }
  CHECK(verify_response(keys, good, kBody, kNow + seconds(299)).ok());
  CHECK(verify_response(keys, good, kBody, kNow - seconds(299)).ok());
  CHECK(verify_response(KeySet{}, good, kBody, kNow).error().message ==
        "Wechatpay-Serial \"" + kPubKeyId + "\" is not a key of this tenant (known: none)");
}

TEST_CASE("verify_error_name gives stable names", "[wechatpay][verification]") {
  CHECK(verify_error_name(VerifyError::Kind::missing_header) == "missing_header");
  CHECK(verify_error_name(VerifyError::Kind::unsupported_signature_type) == "unsupported_signature_type");
  CHECK(verify_error_name(VerifyError::Kind::unknown_serial) == "unknown_serial");
  CHECK(verify_error_name(VerifyError::Kind::bad_timestamp) == "bad_timestamp");
  CHECK(verify_error_name(VerifyError::Kind::stale_timestamp) == "stale_timestamp");
  CHECK(verify_error_name(VerifyError::Kind::bad_base64) == "bad_base64");
  CHECK(verify_error_name(VerifyError::Kind::bad_signature) == "bad_signature");
}

TEST_CASE("KeySet refuses a certificate under someone else's serial", "[wechatpay][verification]") {
  KeySet keys;
  const auto refused = keys.add("0A0B0C0D", test::verification_key_fixture("go_test_cert.pem"));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == KeyError::Kind::serial_mismatch);
  CHECK(refused.error().message ==
        "key id \"0A0B0C0D\" is not the serial of its certificate (5157F09EFDC096DE15EBE81A47057A7232F1B8E1)");
  CHECK(refused.error().fix == "set wechatpay_key_id to 5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
  CHECK(keys.empty());
  CHECK(keys.add_certificate(test::verification_key_fixture("go_test_public_key.pem")).error().kind ==
        KeyError::Kind::not_a_key);
  // Replacing a key under the same id is how a rotation of a PUB_KEY_ID_ key is expressed.
  CHECK(keys.add(kPubKeyId, test::verification_key_fixture("go_test_public_key.pem")).ok());
  CHECK(keys.add(kPubKeyId, test::verification_key_fixture("second_public.pem")).ok());
  CHECK(keys.key_ids() == std::vector<std::string>{kPubKeyId});
  CHECK(keys.find("PUB_KEY_ID_unknown") == nullptr);
  CHECK(keys.find("") == nullptr);
}
