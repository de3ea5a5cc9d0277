// The private key check (keys.cpp: the RSA components fit together, and a test signature
// verifies) and the cache of parsed keys by file content (key_cache.h): a damaged component is
// refused whichever it is; unchanged bytes are not parsed again, new bytes at the same path
// are, and the file's permissions are checked on every load all the same.
#include <catch2/catch.hpp>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <memory>

#include "core/tenant.h"
#include "core/wechatpay/key_cache.h"
#include "core/wechatpay/keys.h"
#include "wechatpay_test_support.h"

using namespace callbackd;
using namespace callbackd::wechatpay;
using callbackd::test::key_path;
using callbackd::test::read_file;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

constexpr const char* kComponents[] = {
    OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

// The merchant test key (second_rsa2048.pem) rebuilt from its components, with bit `bit` of component `damaged` flipped
// (none when nullptr), as PKCS#8 PEM: what a key damaged inside one number looks like. It still
// decodes: only the check can tell.
std::string rebuilt_key_pem(const char* damaged, int bit) {
  const auto key = parse_private_key_pem(read_file(key_path("second_rsa2048.pem")), "second_rsa2048.pem").value();
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> build(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
  std::vector<std::unique_ptr<BIGNUM, decltype(&BN_free)>> numbers;
  for (const char* name : kComponents) {
    BIGNUM* bn = nullptr;
    REQUIRE(EVP_PKEY_get_bn_param(key.native(), name, &bn) == 1);
    numbers.emplace_back(bn, BN_free);
    if (damaged && std::string(name) == damaged) {
      if (BN_is_bit_set(bn, bit))
        BN_clear_bit(bn, bit);
      else
        BN_set_bit(bn, bit);
    }
    REQUIRE(OSSL_PARAM_BLD_push_BN(build.get(), name, bn) == 1);
  }
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(build.get()), OSSL_PARAM_free);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr),
                                                                  EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  REQUIRE(EVP_PKEY_fromdata_init(ctx.get()) == 1);
  REQUIRE(EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params.get()) == 1);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> rebuilt(raw, EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  REQUIRE(PEM_write_bio_PrivateKey(out.get(), rebuilt.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char* data = nullptr;
  const long length = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<std::size_t>(length));
}

// A tenant whose keys are merchant_key.pem and WeChat Pay's public key (the go test key's) in
// its credentials directory.
TenantRow tenant_row() {
  TenantRow row;
  row.tenant_id = "acme";
  row.caller_mchid = "1900000001";
  row.merchant_serial_no = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
  row.private_key_path = "merchant_key.pem";
  row.wechatpay_key_id = "PUB_KEY_ID_0100000000000000000000000001";
  row.wechatpay_key_path = "wechatpay_public_key.pem";
  return row;
}

}  // namespace

TEST_CASE("private keys: a flipped bit in any RSA component is refused as corrupt", "[wechatpay][keys]") {
  // The rebuilt key itself is fine: the refusals below are the damage's, not the rebuilding's.
  REQUIRE(parse_private_key_pem(rebuilt_key_pem(nullptr, 0), "rebuilt").ok());
  for (const char* component : kComponents) {
    for (int bit : {1, 5, 700}) {
      if (std::string(component) == OSSL_PKEY_PARAM_RSA_E && bit > 16) continue;  // e is 65537
      CAPTURE(component, bit);
      const auto key = parse_private_key_pem(rebuilt_key_pem(component, bit), "/creds/acme.pem");
      REQUIRE_FALSE(key.ok());
      CHECK(key.error().kind == KeyError::Kind::corrupt);
      CHECK_THAT(key.error().message,
                 Equals("/creds/acme.pem: the private key is corrupt (its RSA components do not fit together)"));
      CHECK_THAT(key.error().fix, Equals("download the key again from the merchant platform"));
    }
  }
}

TEST_CASE("key cache: the same bytes are parsed once, new bytes at the same path again", "[wechatpay][keys]") {
  test::TempDir dir;
  const std::string merchant_pem = read_file(key_path("second_rsa2048.pem"));
  const std::string private_path = dir.write("merchant_key.pem", merchant_pem);
  dir.write("wechatpay_public_key.pem", read_file(key_path("go_test_public_key.pem")), 0644);
  KeyCache cache;

  auto loaded = load_tenant_credentials(tenant_row(), dir.path().string(), &cache);
  REQUIRE(loaded.ok());
  CHECK(cache.counts().parsed == 2);  // the private key and WeChat Pay's
  CHECK(cache.counts().reused == 0);

  SECTION("unchanged files (a SIGHUP, a refresh): no key is parsed or checked again") {
    for (int i = 0; i < 3; ++i) {
      auto again = load_tenant_credentials(tenant_row(), dir.path().string(), &cache);
      REQUIRE(again.ok());
      CHECK(again->merchant.private_key.native() == loaded->merchant.private_key.native());  // the very key
    }
    CHECK(cache.counts().parsed == 2);
    CHECK(cache.counts().reused == 6);
  }

  SECTION("a key replaced in place (same path, new bytes) is parsed and checked again") {
    // Text before the PEM block is allowed: the same key in new bytes.
    dir.write("merchant_key.pem", "replaced in place\n" + merchant_pem);
    auto replaced = load_tenant_credentials(tenant_row(), dir.path().string(), &cache);
    REQUIRE(replaced.ok());
    CHECK(cache.counts().parsed == 3);
    CHECK(cache.counts().reused == 1);  // WeChat Pay's key did not change
    CHECK(replaced->merchant.private_key.native() != loaded->merchant.private_key.native());  // parsed anew
  }

  SECTION("a damaged key replaced in place is refused, and again from the cache") {
    dir.write("merchant_key.pem", rebuilt_key_pem(OSSL_PKEY_PARAM_RSA_FACTOR1, 5));
    for (int i = 0; i < 2; ++i) {
      auto damaged = load_tenant_credentials(tenant_row(), dir.path().string(), &cache);
      REQUIRE_FALSE(damaged.ok());
      REQUIRE(damaged.error().size() == 1);
      CHECK_THAT(damaged.error()[0].to_string(),
                 Contains(private_path + ": the private key is corrupt (its RSA components do not fit together)"));
      CHECK_THAT(damaged.error()[0].to_string(), Contains("download the key again"));
    }
    CHECK(cache.counts().parsed == 3);  // once for the damaged bytes
  }

  SECTION("permissions are checked on every load, cached bytes or not") {
    ::chmod(private_path.c_str(), 0644);
    auto exposed = load_tenant_credentials(tenant_row(), dir.path().string(), &cache);
    REQUIRE_FALSE(exposed.ok());
    CHECK_THAT(exposed.error()[0].to_string(), Contains("permissions 0644 are too open"));
    CHECK(cache.counts().parsed == 2);  // the key's bytes were not parsed again to find that
    ::chmod(private_path.c_str(), 0600);
    CHECK(load_tenant_credentials(tenant_row(), dir.path().string(), &cache).ok());
  }

  SECTION("the same bytes at another path are another entry (messages name the file)") {
    dir.write("other_key.pem", merchant_pem);
    TenantRow other = tenant_row();
    other.private_key_path = "other_key.pem";
    REQUIRE(load_tenant_credentials(other, dir.path().string(), &cache).ok());
    CHECK(cache.counts().parsed == 3);
  }
}
