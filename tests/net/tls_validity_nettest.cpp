// Certificate validity dates and the throwaway CA's name constraints: a server certificate signed by the trusted CA,
// with the right host name, but outside its validity period, is refused before anything is sent. The certificates are
// made here with the OpenSSL API (explicit notBefore/notAfter), so the test does not depend on a fixture aging or on
// faking the clock.
#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "net/net_support.h"

using namespace nettest;
using callbackd::http::TransportErrorKind;

namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;

Key read_key(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "r"), std::fclose);
  REQUIRE(f);
  Key key(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
  REQUIRE(key);
  return key;
}

Cert read_cert(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "r"), std::fclose);
  REQUIRE(f);
  Cert cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  REQUIRE(cert);
  return cert;
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  REQUIRE(ext != nullptr);
  REQUIRE(X509_add_ext(cert, ext, -1) == 1);
  X509_EXTENSION_free(ext);
}

// A server certificate for `names` (subjectAltName; CN = `common_name`), signed by the
// fixture's trusted CA, valid from now + `from` to now + `to` (seconds; negative = in the
// past). Writes cert and key into `dir`.
void make_server_certificate(const std::string& dir, long from, long to,
                             const char* names = "IP:127.0.0.1,DNS:localhost", const char* common_name = "localhost") {
  const std::string ca_dir = keys_dir("trusted");
  const Key ca_key = read_key(ca_dir + "/ca.key");
  const Cert ca = read_cert(ca_dir + "/ca.pem");

  Key key(EVP_EC_gen("P-256"));  // the server's own key: its type does not matter here
  REQUIRE(key);
  Cert cert(X509_new());
  REQUIRE(X509_set_version(cert.get(), 2) == 1);
  REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 0x5EED) == 1);
  REQUIRE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), from) != nullptr);
  REQUIRE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), to) != nullptr);
  X509_NAME* name = X509_get_subject_name(cert.get());
  REQUIRE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name), -1,
                                     -1, 0) == 1);
  REQUIRE(X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())) == 1);
  REQUIRE(X509_set_pubkey(cert.get(), key.get()) == 1);
  add_extension(cert.get(), ca.get(), NID_basic_constraints, "CA:FALSE");
  add_extension(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), ca.get(), NID_subject_alt_name, names);
  REQUIRE(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0);

  std::unique_ptr<FILE, int (*)(FILE*)> c(std::fopen((dir + "/server.pem").c_str(), "w"), std::fclose);
  REQUIRE(PEM_write_X509(c.get(), cert.get()) == 1);
  std::unique_ptr<FILE, int (*)(FILE*)> k(std::fopen((dir + "/server.key").c_str(), "w"), std::fclose);
  REQUIRE(PEM_write_PrivateKey(k.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
}

}  // namespace

TEST_CASE("a certificate outside its validity period is refused, naming the cause", "[net][client][tls]") {
  constexpr long kDay = 24 * 3600;
  struct Row {
    const char* what;
    long from, to;
    const char* cause;  // OpenSSL's verify result, as the client reports it
  };
  const Row rows[] = {
      {"expired yesterday", -30 * kDay, -kDay, "certificate verification failed: certificate has expired"},
      {"valid only from tomorrow", kDay, 30 * kDay, "certificate verification failed: certificate is not yet valid"},
      {"valid now (control: the same construction is accepted)", -kDay, 30 * kDay, nullptr},
  };
  char tmpl[] = "/tmp/callbackd-tls-validity.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  for (const auto& row : rows) {
    INFO(row.what);
    make_server_certificate(dir, row.from, row.to);
    auto config = sandbox_config();
    config.tls_certificate_file = dir + "/server.pem";
    config.tls_private_key_file = dir + "/server.key";
    Sandbox sb(config);
    auto res =
        http::send_blocking(client_config(sb.port()), signed_post(tenant(), "1900000101", "https://example.com/cb"));
    if (row.cause == nullptr) {
      REQUIRE(res);
      CHECK(res->status == 200);
      continue;
    }
    REQUIRE_FALSE(res);
    CHECK(res.error().kind == TransportErrorKind::tls);
    CHECK_FALSE(res.error().request_sent);
    // "127.0.0.1: certificate verification failed: certificate has expired (/CN=localhost valid
    // ... to ..., this host's clock says ...)": the server, the cause, the certificate and the
    // dates that explain it.
    CHECK_THAT(res.error().message,
               Catch::Matchers::StartsWith(std::string("127.0.0.1: ") + row.cause + " (/CN=localhost valid "));
    CHECK_THAT(res.error().message, Catch::Matchers::Contains("this host's clock says"));
    CHECK(sb.stats().at("requests_total") == 0);  // refused during the handshake: nothing reached the server
  }
  std::filesystem::remove_all(dir);
}

// scripts/sandbox-keys' CA is name-constrained (critical) to localhost, 127.0.0.1 and ::1: a
// ca.pem left in wechatpay.ca_file, or its leaked key, vouches for nothing else, WeChat Pay's
// production host least of all.
TEST_CASE("the throwaway CA vouches only for loopback names: a production-host leaf it signed is refused",
          "[net][client][tls]") {
  char tmpl[] = "/tmp/callbackd-tls-constraints.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  constexpr long kDay = 24 * 3600;

  // OpenSSL's own chain verification, as any client that trusts ca.pem would run it.
  make_server_certificate(dir, -kDay, kDay, "DNS:api.mch.weixin.qq.com", "api.mch.weixin.qq.com");
  {
    const Cert leaf = read_cert(dir + "/server.pem");
    std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>> store(X509_STORE_new());
    REQUIRE(X509_STORE_load_file(store.get(), (keys_dir("trusted") + "/ca.pem").c_str()) == 1);
    std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(X509_STORE_CTX_new());
    REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr) == 1);
    X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx.get()), "api.mch.weixin.qq.com", 0);
    CHECK(X509_verify_cert(ctx.get()) != 1);
    const int error = X509_STORE_CTX_get_error(ctx.get());
    INFO(X509_verify_cert_error_string(error));
    CHECK(error == X509_V_ERR_PERMITTED_VIOLATION);
  }

  // The daemon's TLS client against a server presenting such a leaf. It also names 127.0.0.1,
  // so the host name matches and only the constraint can refuse it.
  make_server_certificate(dir, -kDay, kDay, "DNS:api.mch.weixin.qq.com,IP:127.0.0.1", "api.mch.weixin.qq.com");
  {
    auto config = sandbox_config();
    config.tls_certificate_file = dir + "/server.pem";
    config.tls_private_key_file = dir + "/server.key";
    Sandbox sb(config);
    auto res =
        http::send_blocking(client_config(sb.port()), signed_post(tenant(), "1900000101", "https://example.com/cb"));
    REQUIRE_FALSE(res);
    CHECK(res.error().kind == TransportErrorKind::tls);
    CHECK_FALSE(res.error().request_sent);
    CHECK_THAT(res.error().message,
               Catch::Matchers::Contains("certificate verification failed: permitted subtree violation"));
    CHECK(sb.stats().at("requests_total") == 0);
  }

  // Control: what the CA is for still works, the sandbox's own certificate by IP and by name.
  {
    Sandbox sb;
    for (const char* host : {"127.0.0.1", "localhost"}) {
      INFO(host);
      auto res = http::send_blocking(client_config(sb.port(), host),
                                     signed_post(tenant(), "1900000102", "https://example.com/cb"));
      REQUIRE(res);
      CHECK(res->status == 200);
    }
  }
  std::filesystem::remove_all(dir);
}
