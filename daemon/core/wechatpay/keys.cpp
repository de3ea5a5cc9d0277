#include "core/wechatpay/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/file_access.h"
#include "core/wechatpay/key_cache.h"
#include "core/unique_fd.h"

namespace callbackd::wechatpay {
namespace {

constexpr std::size_t kMaxKeyFileBytes = 1024 * 1024;  // a PEM key is ~2 KB; a 1 MB file is not a key
constexpr int kMinRsaBits = 2048;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* pkey) { return std::shared_ptr<EVP_PKEY>(pkey, EVP_PKEY_free); }

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

BioPtr memory_bio(std::string_view pem) {
  // BIO_new_mem_buf takes an int length; inputs are capped at 1 MiB by the callers' checks, but
  // a hostile caller of parse_* could pass more, so clamp (the tail is then simply not read).
  const int len = pem.size() > kMaxKeyFileBytes ? static_cast<int>(kMaxKeyFileBytes) : static_cast<int>(pem.size());
  return BioPtr(BIO_new_mem_buf(pem.data(), len));
}

KeyError error(KeyError::Kind kind, std::string_view source, std::string what, std::string fix = {}) {
  ERR_clear_error();  // leave no stale OpenSSL errors behind for the next, unrelated operation
  return KeyError{kind, std::string(source) + ": " + std::move(what), std::move(fix)};
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Opens a key file named by the operator's own configuration (the sandbox's keys; tenants'
// keys come through open_credential_file instead). O_NONBLOCK keeps a FIFO planted at the path
// from hanging start-up; read_key_file then refuses it.
Result<int, KeyError> open_key_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd >= 0) return fd;
  const int err = errno;
  if (err == ENOENT || err == ENOTDIR)
    return error(KeyError::Kind::missing, path, "no such file", "check the path, or create the key file");
  return error(KeyError::Kind::unreadable, path, std::string("cannot be opened: ") + std::strerror(err),
               "make it readable by the user callbackd runs as");
}

// Reads a whole open file, refusing what cannot be a key. Everything is asked of the
// descriptor (fstat, then read), so the file inspected is the file read; the permission check
// for private keys is done by the caller on the same stat result and descriptor.
Result<std::string, KeyError> read_key_file(int fd, const std::string& path, struct stat& st) {
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    return error(KeyError::Kind::unreadable, path, std::string("cannot be inspected: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode))
    return error(KeyError::Kind::unreadable, path, "is not a regular file", "point it at a PEM key file");
  if (static_cast<std::size_t>(st.st_size) > kMaxKeyFileBytes)
    return error(KeyError::Kind::unreadable, path,
                 "is " + std::to_string(st.st_size) + " bytes, too large for a PEM key (limit 1 MiB)",
                 "point it at a PEM key file");
  std::string data(kMaxKeyFileBytes + 1, '\0');
  std::size_t n = 0;
  while (n < data.size()) {
    // From the start, whatever was read through `fd` before: reading twice reads the same.
    const ssize_t got = ::pread(fd, data.data() + n, data.size() - n, static_cast<off_t>(n));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int err = errno;
      return error(KeyError::Kind::unreadable, path, std::string("read error: ") + std::strerror(err));
    }
    if (got == 0) break;
    n += static_cast<std::size_t>(got);
  }
  if (n > kMaxKeyFileBytes)  // grew after fstat
    return error(KeyError::Kind::unreadable, path, "too large for a PEM key (limit 1 MiB)",
                 "point it at a PEM key file");
  data.resize(n);
  return data;
}

Result<std::monostate, KeyError> check_rsa(EVP_PKEY* pkey, std::string_view source, std::string_view what_key) {
  if (EVP_PKEY_is_a(pkey, "RSA") != 1)
    return error(KeyError::Kind::wrong_type, source,
                 std::string(what_key) + " is of type " + EVP_PKEY_get0_type_name(pkey) + ", WeChat Pay v3 needs RSA",
                 "use the RSA 2048 key from the WeChat Pay merchant platform");
  const int bits = EVP_PKEY_get_bits(pkey);
  if (bits < kMinRsaBits)
    return error(KeyError::Kind::wrong_type, source,
                 std::string(what_key) + " is RSA " + std::to_string(bits) + " bits, WeChat Pay v3 needs at least 2048",
                 "use the RSA 2048 key from the WeChat Pay merchant platform");
  return std::monostate{};
}

// The passphrase callback: record that OpenSSL asked, and give it nothing. A daemon cannot
// prompt, so an encrypted key is an error with its own message.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

std::chrono::system_clock::time_point asn1_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string serial_hex(const X509* cert) {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  if (bn == nullptr) return {};
  char* hex = BN_bn2hex(bn);
  std::string out = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;  // BN_bn2hex writes uppercase
}

struct BnFree {
  void operator()(BIGNUM* b) const { BN_clear_free(b); }  // private components: wiped
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

BnPtr rsa_param(EVP_PKEY* pkey, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) return nullptr;
  return BnPtr(bn);
}

// Whether the components of a decoded RSA private key belong together: n = p*q,
// e*d = 1 (mod p-1) and (mod q-1), dP = d mod (p-1), dQ = d mod (q-1), qInv*q = 1 (mod p).
// Flipped bits in any one of them break at least one equation. This is OpenSSL's
// EVP_PKEY_pairwise_check for RSA minus its proof that p and q are prime (Miller-Rabin
// rounds on two 1024-bit numbers): that proof was nearly all of its 40 ms and more per key
// (bench/bench_keys.cpp; docs/benchmarks.md, "Start-up"), and what it adds, factors that are
// not prime, is a key that signs wrongly, which signs_correctly() catches. These few products and
// remainders take some microseconds. A key of more than two primes (never issued by WeChat Pay)
// gets OpenSSL's full check.
bool rsa_components_fit(EVP_PKEY* pkey) {
  if (rsa_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR3)) {
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> check(
        EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr), EVP_PKEY_CTX_free);
    return check && EVP_PKEY_pairwise_check(check.get()) == 1;
  }
  const BnPtr n = rsa_param(pkey, OSSL_PKEY_PARAM_RSA_N), e = rsa_param(pkey, OSSL_PKEY_PARAM_RSA_E),
              d = rsa_param(pkey, OSSL_PKEY_PARAM_RSA_D), p = rsa_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1),
              q = rsa_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2), dp = rsa_param(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT1),
              dq = rsa_param(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT2),
              qinv = rsa_param(pkey, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
  if (!n || !e || !d || !p || !q || !dp || !dq || !qinv) return false;  // a component is missing
  std::unique_ptr<BN_CTX, decltype(&BN_CTX_free)> ctx(BN_CTX_secure_new(), BN_CTX_free);
  const BnPtr product(BN_new()), p1(BN_new()), q1(BN_new()), r(BN_new());
  if (!ctx || !product || !p1 || !q1 || !r) return false;
  auto mod_is = [&](const BIGNUM* a, const BIGNUM* m, const BIGNUM* expected) {
    return BN_mod(r.get(), a, m, ctx.get()) == 1 && BN_cmp(r.get(), expected) == 0;
  };
  if (BN_is_one(p.get()) || BN_is_one(q.get()) || BN_is_zero(p.get()) || BN_is_zero(q.get())) return false;
  if (BN_mul(product.get(), p.get(), q.get(), ctx.get()) != 1 || BN_cmp(product.get(), n.get()) != 0) return false;
  if (BN_sub(p1.get(), p.get(), BN_value_one()) != 1 || BN_sub(q1.get(), q.get(), BN_value_one()) != 1) return false;
  if (!mod_is(d.get(), p1.get(), dp.get()) || !mod_is(d.get(), q1.get(), dq.get())) return false;
  if (BN_mul(product.get(), e.get(), d.get(), ctx.get()) != 1) return false;
  if (!mod_is(product.get(), p1.get(), BN_value_one()) || !mod_is(product.get(), q1.get(), BN_value_one()))
    return false;
  if (BN_mul(product.get(), qinv.get(), q.get(), ctx.get()) != 1) return false;
  return mod_is(product.get(), p.get(), BN_value_one());
}

// The harm itself, checked directly: a test signature (SHA256withRSA, as every request is
// signed) that the key's own public half verifies. About a millisecond.
bool signs_correctly(EVP_PKEY* pkey) {
  static constexpr unsigned char kMessage[] = "callbackd key check";
  unsigned char signature[1024];  // RSA up to 8192 bits
  std::size_t length = sizeof signature;
  if (static_cast<std::size_t>(EVP_PKEY_get_size(pkey)) > length) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sign(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!sign || EVP_DigestSignInit(sign.get(), nullptr, EVP_sha256(), nullptr, pkey) != 1 ||
      EVP_DigestSign(sign.get(), signature, &length, kMessage, sizeof kMessage) != 1)
    return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> verify(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return verify && EVP_DigestVerifyInit(verify.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
         EVP_DigestVerify(verify.get(), signature, length, kMessage, sizeof kMessage) == 1;
}

}  // namespace

int PrivateKey::bits() const noexcept { return EVP_PKEY_get_bits(pkey_.get()); }
int VerificationKey::bits() const noexcept { return EVP_PKEY_get_bits(pkey_.get()); }

Result<PrivateKey, KeyError> parse_private_key_pem(std::string_view pem, std::string_view source) {
  // Name the common mix-ups before OpenSSL gives a generic "no start line".
  const bool has_private = contains(pem, "PRIVATE KEY-----");
  if (contains(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
      (has_private && contains(pem, "Proc-Type: 4,ENCRYPTED")))
    return error(
        KeyError::Kind::encrypted, source, "the private key is encrypted with a passphrase",
        "store it unencrypted (e.g. openssl pkey -in KEY -out KEY.plain) and protect it with file permissions or systemd LoadCredential=");
  if (!has_private) {
    if (contains(pem, "-----BEGIN CERTIFICATE-----"))
      return error(KeyError::Kind::not_a_key, source, "contains a certificate, not a private key",
                   "use apiclient_key.pem, not apiclient_cert.pem");
    if (contains(pem, "PUBLIC KEY-----"))
      return error(KeyError::Kind::not_a_key, source, "contains a public key, not a private key",
                   "use the merchant API private key (apiclient_key.pem)");
    return error(KeyError::Kind::corrupt, source, "is not a PEM private key (no \"-----BEGIN PRIVATE KEY-----\" block)",
                 "use the merchant API private key in PEM form (PKCS#8 or PKCS#1)");
  }
  BioPtr bio = memory_bio(pem);
  if (!bio) return error(KeyError::Kind::corrupt, source, "out of memory reading the key");
  bool asked_passphrase = false;
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, &asked_passphrase);
  if (raw == nullptr) {
    if (asked_passphrase)
      return error(KeyError::Kind::encrypted, source, "the private key is encrypted with a passphrase",
                   "store it unencrypted and protect it with file permissions");
    return error(KeyError::Kind::corrupt, source, "the PEM private key is corrupt (cannot be decoded)",
                 "download the key again from the merchant platform");
  }
  auto pkey = own(raw);
  if (auto ok = check_rsa(pkey.get(), source, "the private key"); !ok) return std::move(ok).error();
  // A damaged key can still decode (flipped bits inside a number); it would then sign every
  // request wrongly and the tenant would see nothing but 401 SIGN_ERROR. Caught here, once.
  if (!rsa_components_fit(pkey.get()) || !signs_correctly(pkey.get()))
    return error(KeyError::Kind::corrupt, source, "the private key is corrupt (its RSA components do not fit together)",
                 "download the key again from the merchant platform");
  ERR_clear_error();
  return PrivateKey(std::move(pkey));
}

namespace {

// As OpenSSH does: a secret that others can read is refused, since it may already be
// compromised and the operator should know. The ACL counts too: systemd >= 254 grants the
// daemon's user with one (and the group bits then show its mask).
std::optional<KeyError> secret_exposure(int fd, const struct stat& st, const std::string& path, uid_t daemon_uid) {
  FileAccess access{st.st_mode, st.st_uid, {}};
  if (auto acl = read_access_acl(fd); acl)
    access.acl = std::move(acl).value();
  else
    return error(KeyError::Kind::unreadable, path, std::move(acl).error(), "inspect it with getfacl " + path);
  if (auto exposed = private_file_exposure(access, daemon_uid, path))
    return error(KeyError::Kind::too_open, path, std::move(exposed->what), std::move(exposed->fix));
  return std::nullopt;
}

}  // namespace

Result<PrivateKey, KeyError> read_private_key(int fd, const std::string& path, uid_t daemon_uid, KeyCache* cache) {
  struct stat st {};
  auto data = read_key_file(fd, path, st);
  if (!data) return std::move(data).error();
  auto parsed = cache ? cache->private_key(*data, path) : parse_private_key_pem(*data, path);
  // A certificate or public key named where the private key belongs holds no secret: saying
  // "chmod 600" about it would send the operator to fix the wrong thing first.
  if (!parsed && parsed.error().kind == KeyError::Kind::not_a_key) return parsed;
  if (auto exposed = secret_exposure(fd, st, path, daemon_uid)) return *std::move(exposed);
  return parsed;
}

Result<std::string, KeyError> read_secret_file(int fd, const std::string& path, uid_t daemon_uid) {
  struct stat st {};
  auto data = read_key_file(fd, path, st);
  if (!data) return std::move(data).error();
  if (auto exposed = secret_exposure(fd, st, path, daemon_uid)) return *std::move(exposed);
  return data;
}

Result<PrivateKey, KeyError> load_private_key_file(const std::string& path) {
  auto fd = open_key_file(path);
  if (!fd) return std::move(fd).error();
  const UniqueFd closer{*fd};
  return read_private_key(*fd, path, ::geteuid());
}

Result<VerificationKey, KeyError> parse_verification_key_pem(std::string_view pem, std::string_view source) {
  if (contains(pem, "PRIVATE KEY-----"))
    return error(KeyError::Kind::not_a_key, source,
                 "contains a private key where a public key or certificate is expected",
                 "use the WeChat Pay public key (pub_key.pem) or platform certificate; never the private key");
  if (contains(pem, "-----BEGIN CERTIFICATE-----")) {
    BioPtr bio = memory_bio(pem);
    if (!bio) return error(KeyError::Kind::corrupt, source, "out of memory reading the certificate");
    std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert)
      return error(KeyError::Kind::corrupt, source, "the PEM certificate is corrupt (cannot be decoded)",
                   "download the certificate again");
    auto pkey = own(X509_get_pubkey(cert.get()));
    if (!pkey) return error(KeyError::Kind::corrupt, source, "the certificate's public key cannot be decoded");
    if (auto ok = check_rsa(pkey.get(), source, "the certificate's key"); !ok) return std::move(ok).error();
    VerificationKey::Certificate info{serial_hex(cert.get()), asn1_time_point(X509_get0_notBefore(cert.get())),
                                      asn1_time_point(X509_get0_notAfter(cert.get()))};
    ERR_clear_error();
    return VerificationKey(std::move(pkey), std::move(info));
  }
  if (!contains(pem, "PUBLIC KEY-----"))
    return error(
        KeyError::Kind::not_a_key, source,
        "is not a PEM public key or certificate (no \"-----BEGIN PUBLIC KEY-----\" or \"-----BEGIN CERTIFICATE-----\" block)",
        "use the WeChat Pay public key (pub_key.pem) or a platform certificate in PEM form");
  // OSSL_DECODER reads both SubjectPublicKeyInfo ("PUBLIC KEY") and PKCS#1 ("RSA PUBLIC KEY").
  EVP_PKEY* raw = nullptr;
  OSSL_DECODER_CTX* dctx =
      OSSL_DECODER_CTX_new_for_pkey(&raw, "PEM", nullptr, nullptr, EVP_PKEY_PUBLIC_KEY, nullptr, nullptr);
  if (dctx == nullptr) return error(KeyError::Kind::corrupt, source, "no decoder for PEM public keys");
  const auto* data = reinterpret_cast<const unsigned char*>(pem.data());
  std::size_t len = pem.size() > kMaxKeyFileBytes ? kMaxKeyFileBytes : pem.size();
  const int decoded = OSSL_DECODER_from_data(dctx, &data, &len);
  OSSL_DECODER_CTX_free(dctx);
  if (decoded != 1 || raw == nullptr) {
    EVP_PKEY_free(raw);
    return error(KeyError::Kind::corrupt, source, "the PEM public key is corrupt (cannot be decoded)",
                 "download the WeChat Pay public key again");
  }
  auto pkey = own(raw);
  if (auto ok = check_rsa(pkey.get(), source, "the public key"); !ok) return std::move(ok).error();
  ERR_clear_error();
  return VerificationKey(std::move(pkey), std::nullopt);
}

Result<VerificationKey, KeyError> read_verification_key(int fd, const std::string& path, KeyCache* cache) {
  struct stat st {};
  auto data = read_key_file(fd, path, st);
  if (!data) return std::move(data).error();
  return cache ? cache->verification_key(*data, path) : parse_verification_key_pem(*data, path);
}

Result<VerificationKey, KeyError> load_verification_key_file(const std::string& path) {
  auto fd = open_key_file(path);
  if (!fd) return std::move(fd).error();
  const UniqueFd closer{*fd};
  return read_verification_key(*fd, path);
}

bool keys_match(const PrivateKey& private_key, const VerificationKey& public_key) {
  const bool match = EVP_PKEY_eq(private_key.native(), public_key.native()) == 1;
  ERR_clear_error();
  return match;
}

Result<VerificationKey, CryptoError> public_half(const PrivateKey& private_key) {
  // Round-trip through DER SubjectPublicKeyInfo: the result holds no private components.
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(private_key.native(), &der);
  if (len <= 0) {
    ERR_clear_error();
    return CryptoError{"cannot encode the public key"};
  }
  const unsigned char* p = der;
  EVP_PKEY* raw = d2i_PUBKEY(nullptr, &p, len);
  OPENSSL_free(der);
  if (raw == nullptr) {
    ERR_clear_error();
    return CryptoError{"cannot decode the public key"};
  }
  return VerificationKey(own(raw), std::nullopt);
}

}  // namespace callbackd::wechatpay
