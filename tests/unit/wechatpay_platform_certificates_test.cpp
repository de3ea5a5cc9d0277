// Platform certificates (core/wechatpay/platform_certificates.h): the APIv3 key, AES-256-GCM
// against WeChat Pay's own published example (wechatpay-java's AeadAesCipherTest and its
// TestConfig.DOWNLOAD_CERTIFICATE_RESPONSE, a real /v3/certificates answer with the test
// APIv3 key), each refusal naming its check, and the trust decision as a table.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/tenant.h"
#include "core/wechatpay/platform_certificates.h"
#include "wechatpay_test_support.h"

using namespace callbackd;
using namespace callbackd::wechatpay;
using std::chrono::seconds;
using std::chrono::system_clock;
using Kind = CertificateError::Kind;

namespace {

// wechatpay-java core/src/test/java/com/wechat/pay/java/core/model/TestConfig.java
constexpr std::string_view kJavaApiV3Key = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
constexpr std::string_view kJavaSerial = "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC";
// Inside the Java certificate's validity (2023-09-19 to 2028-09-17).
const system_clock::time_point kJavaNow{seconds(1704067200)};  // 2024-01-01T00:00:00Z

// Inside the validity of the repository's test certificates (2026-11-26 to 2126).
constexpr std::int64_t kTs = 1798761600;  // 2027-01-01T00:00:00Z
const system_clock::time_point kNow{seconds(kTs)};
const std::string kSerialA = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";  // go_test_cert.pem
const std::string kSerialB = "0A0B0C0D";                                  // second_cert.pem

// Also used for a namespace-scope constant: throws rather than REQUIREs.
ApiV3Key key_of(std::string_view text) {
  auto key = parse_apiv3_key(text, "test key");
  if (!key) throw std::runtime_error(key.error().message);
  return key.value();
}

const ApiV3Key kTestKey = key_of("0123456789abcdefghijABCDEFGHIJ-_");

EncryptedCertificate java_entry() {
  auto entries = parse_certificates_answer(test::read_file(test::vector_path("java_certificates_answer.json")));
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 1);
  return entries->front();
}

std::string cert_pem(const std::string& name) { return test::read_file(test::key_path(name)); }

std::string answer_listing(const std::vector<std::string>& cert_files, const ApiV3Key& key = kTestKey) {
  std::vector<CertificateToList> list;
  std::vector<std::string> nonces;
  for (const auto& file : cert_files) {
    auto cert = platform_certificate_from_pem(cert_pem(file), file);
    REQUIRE(cert.ok());
    list.push_back({cert->serial, "2026-11-27T05:48:02+08:00", "2126-11-03T05:48:02+08:00", cert->pem});
    nonces.push_back("nonce" + std::to_string(nonces.size()) + "abcdef");
  }
  auto body = certificates_answer(list, key, nonces);
  REQUIRE(body.ok());
  return body.value();
}

ResponseHeaders signed_headers(const PrivateKey& key, const std::string& serial, const std::string& body,
                               std::int64_t ts = kTs) {
  auto s = sign_response(key, serial, body, ts, "N0nce0123456789abcdefABCDEF01234");
  REQUIRE(s.ok());
  ResponseHeaders h;
  h.timestamp = s->timestamp;
  h.nonce = s->nonce;
  h.signature = s->signature;
  h.serial = s->serial;
  return h;
}

KeySet certificates(std::initializer_list<const char*> files) {
  KeySet keys;
  for (const char* f : files) REQUIRE(keys.add_certificate(test::verification_key_fixture(f)).ok());
  return keys;
}

}  // namespace

TEST_CASE("the APIv3 key is 32 bytes, a line ending aside", "[wechatpay][platform_certificates]") {
  const std::string k32(32, 'k');
  CHECK(parse_apiv3_key(k32, "f").ok());
  CHECK(parse_apiv3_key(k32 + "\n", "f").ok());
  CHECK(parse_apiv3_key(k32 + "\r\n", "f").ok());
  CHECK(parse_apiv3_key(k32 + "\n", "f")->bytes() == parse_apiv3_key(k32, "f")->bytes());
  struct Row {
    std::string bytes;
    std::string says;
  };
  for (const Row& row : {Row{"", "holds 0"}, Row{std::string(31, 'k'), "holds 31"}, Row{k32 + "k", "holds 33"},
                         Row{k32 + " \n", "holds 33 (besides its line ending)"}, Row{k32 + "\n\n", "holds 33"}}) {
    auto bad = parse_apiv3_key(row.bytes, "/creds/acme.apiv3");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().kind == KeyError::Kind::corrupt);
    CHECK_THAT(bad.error().message, Catch::Matchers::StartsWith("/creds/acme.apiv3: an APIv3 key is 32 bytes"));
    CHECK_THAT(bad.error().message, Catch::Matchers::Contains(row.says));
    CHECK_FALSE(bad.error().fix.empty());
  }
}

TEST_CASE("AES-256-GCM reproduces WeChat Pay's published AEAD example", "[wechatpay][platform_certificates]") {
  // wechatpay-java AeadAesCipherTest: "message", associated data "associatedData".
  const ApiV3Key key = key_of(kJavaApiV3Key);
  auto plain = aead_aes_256_gcm_decrypt(key, "uluk4a9R25RW", "associatedData", "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=");
  REQUIRE(plain.ok());
  CHECK(plain.value() == "message");
  auto sealed = aead_aes_256_gcm_encrypt(key, "uluk4a9R25RW", "associatedData", "message");
  REQUIRE(sealed.ok());
  CHECK(sealed.value() == "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=");
}

TEST_CASE("AES-256-GCM refuses what does not authenticate", "[wechatpay][platform_certificates]") {
  const ApiV3Key key = key_of(kJavaApiV3Key);
  const std::string good = "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=";
  struct Row {
    const char* name;
    ApiV3Key key;
    std::string nonce, aad, ciphertext;
    AeadFailure::Kind expected;
  };
  const Row rows[] = {
      {"another key", key_of(std::string(32, 'x')), "uluk4a9R25RW", "associatedData", good, AeadFailure::Kind::bad_tag},
      {"another nonce", key, "uluk4a9R25RX", "associatedData", good, AeadFailure::Kind::bad_tag},
      {"another AAD", key, "uluk4a9R25RW", "certificate", good, AeadFailure::Kind::bad_tag},
      {"ciphertext byte flipped", key, "uluk4a9R25RW", "associatedData",
       "vlwSiIajGClcvcOYvOQ7+l+0PAbzzwI=", AeadFailure::Kind::bad_tag},
      {"tag byte flipped", key, "uluk4a9R25RW", "associatedData",
       "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwA=", AeadFailure::Kind::bad_tag},
      {"tag cut off", key, "uluk4a9R25RW", "associatedData", "ulwSiIajGA==", AeadFailure::Kind::too_short},
      {"not base64", key, "uluk4a9R25RW", "associatedData", "ulwSiIaj!!", AeadFailure::Kind::bad_base64},
      {"11-byte nonce", key, "uluk4a9R25R", "associatedData", good, AeadFailure::Kind::bad_nonce},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    auto plain = aead_aes_256_gcm_decrypt(row.key, row.nonce, row.aad, row.ciphertext);
    REQUIRE_FALSE(plain.ok());
    CHECK(plain.error().kind == row.expected);
  }
}

TEST_CASE("WeChat Pay's published /v3/certificates answer decrypts to its certificate",
          "[wechatpay][platform_certificates]") {
  const EncryptedCertificate entry = java_entry();
  CHECK(entry.serial_no == kJavaSerial);
  CHECK(entry.algorithm == "AEAD_AES_256_GCM");
  CHECK(entry.associated_data == "certificate");
  auto opened = open_certificate(entry, key_of(kJavaApiV3Key), kJavaNow, nullptr);
  REQUIRE(opened.ok());
  CHECK(opened->serial == kJavaSerial);
  CHECK(opened->pem.starts_with("-----BEGIN CERTIFICATE-----"));
  CHECK(opened->effective == system_clock::time_point{seconds(1695136558)});  // 2023-09-19T15:15:58Z
  CHECK(opened->expiry == system_clock::time_point{seconds(1852816558)});     // 2028-09-17T15:15:58Z
}

TEST_CASE("each refusal of a certificate names its check and the certificate", "[wechatpay][platform_certificates]") {
  const ApiV3Key key = key_of(kJavaApiV3Key);
  struct Row {
    const char* name;
    std::function<void(EncryptedCertificate&)> change;
    ApiV3Key key;
    system_clock::time_point now;
    Kind expected;
    const char* says;
  };
  const Row rows[] = {
      {"wrong APIv3 key", [](auto&) {}, key_of(std::string(32, 'x')), kJavaNow, Kind::bad_tag, "tag does not verify"},
      {"tampered ciphertext", [](auto& e) { e.ciphertext[10] = e.ciphertext[10] == 'A' ? 'B' : 'A'; }, key, kJavaNow,
       Kind::bad_tag, "tag does not verify"},
      {"tampered associated_data", [](auto& e) { e.associated_data = "certificat"; }, key, kJavaNow, Kind::bad_tag,
       "tag does not verify"},
      {"another algorithm", [](auto& e) { e.algorithm = "AEAD_SM4_GCM"; }, key, kJavaNow, Kind::unsupported_algorithm,
       "AEAD_SM4_GCM"},
      {"serial of another certificate", [](auto& e) { e.serial_no = "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427ED"; }, key,
       kJavaNow, Kind::serial_mismatch, "decrypts to a certificate with serial 5DEA10EF"},
      {"not yet valid", [](auto&) {}, key, system_clock::time_point{seconds(1690000000)}, Kind::outside_validity,
       "is valid from 2023-09-19T15:15:58Z to 2028-09-17T15:15:58Z, not now (2023-07-22"},
      {"expired", [](auto&) {}, key, system_clock::time_point{seconds(1900000000)}, Kind::outside_validity,
       "not now (2030-03-17"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    EncryptedCertificate entry = java_entry();
    row.change(entry);
    auto opened = open_certificate(entry, row.key, row.now, nullptr);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().kind == row.expected);
    CHECK_THAT(opened.error().message, Catch::Matchers::StartsWith("certificate \"" + entry.serial_no + "\""));
    CHECK_THAT(opened.error().message, Catch::Matchers::Contains(row.says));
  }
  // What was decrypted but is no certificate.
  EncryptedCertificate not_pem = java_entry();
  not_pem.ciphertext = aead_aes_256_gcm_encrypt(kTestKey, not_pem.nonce, "certificate", "hello").value();
  auto opened = open_certificate(not_pem, kTestKey, kJavaNow, nullptr);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().kind == Kind::not_a_certificate);
}

TEST_CASE("a /v3/certificates answer of another shape is refused as malformed", "[wechatpay][platform_certificates]") {
  nlohmann::json good = nlohmann::json::parse(test::read_file(test::vector_path("java_certificates_answer.json")));
  struct Row {
    const char* name;
    std::string body;
    const char* says;
  };
  auto without = [&](const char* field) {
    nlohmann::json j = good;
    j["data"][0].erase(field);
    return j.dump();
  };
  auto without_enc = [&](const char* field) {
    nlohmann::json j = good;
    j["data"][0]["encrypt_certificate"].erase(field);
    return j.dump();
  };
  const Row rows[] = {
      {"not JSON", "<html>", "is not a JSON object"},
      {"array", "[]", "is not a JSON object"},
      {"no data", "{}", "has no data array"},
      {"empty data", R"({"data":[]})", "lists no certificate"},
      {"entry not object", R"({"data":[1]})", "data[0] that is not an object"},
      {"no serial", without("serial_no"), "data[0].serial_no"},
      {"no expiry", without("expire_time"), "data[0].expire_time"},
      {"no encrypt_certificate", without("encrypt_certificate"), "data[0].encrypt_certificate"},
      {"no nonce", without_enc("nonce"), "data[0].encrypt_certificate.nonce"},
      {"no ciphertext", without_enc("ciphertext"), "data[0].encrypt_certificate.ciphertext"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    auto parsed = parse_certificates_answer(row.body);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().kind == Kind::malformed_answer);
    CHECK_THAT(parsed.error().message, Catch::Matchers::Contains(row.says));
  }
}

TEST_CASE("trust: signed by a certificate it carries and, once any is trusted, by a trusted one",
          "[wechatpay][platform_certificates]") {
  const PrivateKey key_a = test::go_test_private_key();
  const PrivateKey key_b = test::private_key_fixture("second_rsa2048.pem");
  const std::string body = R"({"data":[]})";  // the judge reads only the signature
  struct Row {
    const char* name;
    KeySet carried;
    KeySet trusted;
    const PrivateKey* signer;
    std::string serial_sent;
    std::int64_t ts;
    std::optional<Kind> refused;  // nullopt: accepted
  };
  const Row rows[] = {
      {"first download, signed by a listed certificate",
       certificates({"go_test_cert.pem", "second_cert.pem"}),
       {},
       &key_a,
       kSerialA,
       kTs,
       std::nullopt},
      {"rotation announced: signed by the trusted one, new one listed",
       certificates({"go_test_cert.pem", "second_cert.pem"}), certificates({"go_test_cert.pem"}), &key_a, kSerialA, kTs,
       std::nullopt},
      {"after the switch: signed by the new one, trusted since the last refresh",
       certificates({"go_test_cert.pem", "second_cert.pem"}), certificates({"go_test_cert.pem", "second_cert.pem"}),
       &key_b, kSerialB, kTs, std::nullopt},
      {"signed by a listed certificate the tenant does not trust",
       certificates({"go_test_cert.pem", "second_cert.pem"}), certificates({"go_test_cert.pem"}), &key_b, kSerialB, kTs,
       Kind::not_signed_by_trusted},
      {"signed under a serial the answer does not list",
       certificates({"go_test_cert.pem"}),
       {},
       &key_b,
       kSerialB,
       kTs,
       Kind::signature_invalid},
      {"signed by another key under a listed serial",
       certificates({"go_test_cert.pem", "second_cert.pem"}),
       {},
       &key_b,
       kSerialA,
       kTs,
       Kind::signature_invalid},
      {"trusted key's signature, but the answer does not carry it", certificates({"second_cert.pem"}),
       certificates({"go_test_cert.pem"}), &key_a, kSerialA, kTs, Kind::signature_invalid},
      {"stale timestamp", certificates({"go_test_cert.pem"}), {}, &key_a, kSerialA, kTs - 301, Kind::signature_invalid},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    auto judged = judge_download_signature(row.carried, row.trusted,
                                           signed_headers(*row.signer, row.serial_sent, body, row.ts), body, kNow);
    if (!row.refused) {
      REQUIRE(judged.ok());
      CHECK(judged.value() == row.serial_sent);
    } else {
      REQUIRE_FALSE(judged.ok());
      CHECK(judged.error().kind == *row.refused);
      CHECK_FALSE(judged.error().fix.empty());
    }
  }
}

TEST_CASE("accept_download: the whole answer, encrypted, signed and checked", "[wechatpay][platform_certificates]") {
  const PrivateKey key_a = test::go_test_private_key();
  const std::string body = answer_listing({"go_test_cert.pem", "second_cert.pem"});

  SECTION("accepted: every certificate, with its PEM") {
    auto accepted = accept_download(body, signed_headers(key_a, kSerialA, body), kTestKey, {}, kNow, nullptr);
    REQUIRE(accepted.ok());
    REQUIRE(accepted->size() == 2);
    CHECK(accepted->at(0).serial == kSerialA);
    CHECK(accepted->at(1).serial == kSerialB);
    CHECK(accepted->at(1).pem == cert_pem("second_cert.pem"));
  }
  SECTION("the answer changed after signing") {
    std::string changed = body;
    changed.insert(changed.size() - 1, " ");
    auto refused = accept_download(changed, signed_headers(key_a, kSerialA, body), kTestKey, {}, kNow, nullptr);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().kind == Kind::signature_invalid);
  }
  SECTION("encrypted with another APIv3 key") {
    const std::string other = answer_listing({"go_test_cert.pem"}, key_of(std::string(32, 'o')));
    auto refused = accept_download(other, signed_headers(key_a, kSerialA, other), kTestKey, {}, kNow, nullptr);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().kind == Kind::bad_tag);
    CHECK_THAT(refused.error().message, Catch::Matchers::Contains(kSerialA));
  }
  SECTION("platform CA: every certificate must chain to it") {
    auto only_a = PlatformCa::parse(cert_pem("go_test_cert.pem"), "ca.pem");
    REQUIRE(only_a.ok());
    auto refused = accept_download(body, signed_headers(key_a, kSerialA, body), kTestKey, {}, kNow, &only_a.value());
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().kind == Kind::untrusted_chain);
    CHECK_THAT(refused.error().message, Catch::Matchers::Contains(kSerialB));

    auto both = PlatformCa::parse(cert_pem("go_test_cert.pem") + cert_pem("second_cert.pem"), "ca.pem");
    REQUIRE(both.ok());
    CHECK(accept_download(body, signed_headers(key_a, kSerialA, body), kTestKey, {}, kNow, &both.value()).ok());
  }
  SECTION("a CA file without a certificate is refused") {
    auto bad = PlatformCa::parse(test::read_file(test::vector_path("go_test_private_key.pem")), "ca.pem");
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error().message, Catch::Matchers::Contains("ca.pem: holds no PEM certificate"));
  }
}

TEST_CASE("certificate mode: the APIv3 key from the credentials directory, the stored certificates as keys",
          "[wechatpay][platform_certificates][credentials]") {
  test::TempDir dir;
  dir.write("merchant_key.pem", test::read_file(test::key_path("second_rsa2048.pem")));
  TenantRow row;
  row.tenant_id = "charlie";
  row.caller_mchid = "1900000003";
  row.merchant_serial_no = "0A0B0C0D";
  row.private_key_path = "merchant_key.pem";
  row.apiv3_key_path = "apiv3.key";
  REQUIRE(row.certificate_mode());

  SECTION("no certificate stored yet: the key, nothing to verify with, no Wechatpay-Serial to ask for") {
    dir.write("apiv3.key", "0123456789abcdefghijABCDEFGHIJ-_\n");
    auto loaded = load_tenant_credentials(row, dir.path().string());
    REQUIRE(loaded.ok());
    REQUIRE(loaded->apiv3_key);
    CHECK(loaded->apiv3_key->bytes() == kTestKey.bytes());
    CHECK(loaded->response_keys.empty());
    CHECK(loaded->wechatpay_serial.empty());
  }
  SECTION("stored certificates verify; the newest is asked for") {
    dir.write("apiv3.key", "0123456789abcdefghijABCDEFGHIJ-_");
    const auto t = system_clock::time_point{seconds(kTs)};
    row.platform_certificates = {{kSerialA, cert_pem("go_test_cert.pem"), t, t, t}};
    auto loaded = load_tenant_credentials(row, dir.path().string());
    REQUIRE(loaded.ok());
    CHECK(loaded->response_keys.find(kSerialA) != nullptr);
    CHECK(loaded->wechatpay_serial == kSerialA);
  }
  SECTION("a stored row under another serial is named with the fix") {
    dir.write("apiv3.key", "0123456789abcdefghijABCDEFGHIJ-_");
    const auto t = system_clock::time_point{seconds(kTs)};
    row.platform_certificates = {{kSerialB, cert_pem("go_test_cert.pem"), t, t, t}};
    auto loaded = load_tenant_credentials(row, dir.path().string());
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().front().where == "tenant 'charlie': platform_certificates[0A0B0C0D]");
  }
  SECTION("an APIv3 key of the wrong length, or readable by others, is refused naming the column") {
    dir.write("apiv3.key", "too short");
    auto short_key = load_tenant_credentials(row, dir.path().string());
    REQUIRE_FALSE(short_key.ok());
    CHECK(short_key.error().front().where == "tenant 'charlie': apiv3_key_path");
    CHECK_THAT(short_key.error().front().what,
               Catch::Matchers::Contains("an APIv3 key is 32 bytes, this file holds 9"));
    dir.write("apiv3.key", "0123456789abcdefghijABCDEFGHIJ-_", 0644);
    auto exposed = load_tenant_credentials(row, dir.path().string());
    REQUIRE_FALSE(exposed.ok());
    CHECK(exposed.error().front().where == "tenant 'charlie': apiv3_key_path");
    CHECK_THAT(exposed.error().front().what, Catch::Matchers::Contains("too open"));
  }
  SECTION("neither way configured") {
    row.apiv3_key_path.clear();
    auto loaded = load_tenant_credentials(row, dir.path().string());
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().front().where == "tenant 'charlie': wechatpay_key_path");
  }
}

TEST_CASE("judge_certificates_download: keep, pause with the fix, or try again", "[wechatpay][platform_certificates]") {
  const PrivateKey key_a = test::go_test_private_key();
  const std::string body = answer_listing({"go_test_cert.pem"});
  using K = DownloadVerdict::Kind;
  struct Row {
    const char* name;
    int status;
    std::string body;
    ResponseHeaders headers;
    K kind;
    const char* code;
    const char* outcome;
    const char* says;
  };
  const Row rows[] = {
      {"a good answer", 200, body, signed_headers(key_a, kSerialA, body), K::accepted, "", "accepted", ""},
      {"a tampered answer", 200, body + " ", signed_headers(key_a, kSerialA, body), K::refused,
       "PLATFORM_CERTIFICATE_REFUSED", "signature_invalid", "GET /v3/certificates refused (signature_invalid)"},
      {"a public-key merchant",
       404,
       R"({"code":"RESOURCE_NOT_EXISTS","message":"无可用的平台证书"})",
       {},
       K::no_platform_certificate,
       "NO_PLATFORM_CERTIFICATE",
       "not_found",
       "this merchant uses a WeChat Pay public key: set wechatpay_key_id and wechatpay_key_path"},
      {"a proxy's 404 page", 404, "<html>404</html>", {}, K::transient, "HTTP_404", "http_404", "answered 404"},
      {"the tenant's signature refused",
       401,
       R"({"code":"SIGN_ERROR","message":"错误的签名，验签失败"})",
       {},
       K::refused,
       "SIGN_ERROR",
       "http_401",
       "answered 401 SIGN_ERROR"},
      {"WeChat Pay busy",
       503,
       R"({"code":"SYSTEM_ERROR","message":"busy"})",
       {},
       K::transient,
       "SYSTEM_ERROR",
       "http_503",
       "answered 503 SYSTEM_ERROR"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    const auto v = judge_certificates_download(row.status, row.body, row.headers, kTestKey, {}, kNow, nullptr);
    CHECK(v.kind == row.kind);
    CHECK(v.code == row.code);
    CHECK(v.outcome == row.outcome);
    CHECK_THAT(v.reason, Catch::Matchers::Contains(row.says));
    CHECK(v.certificates.size() == (row.kind == K::accepted ? 1u : 0u));
  }
}
