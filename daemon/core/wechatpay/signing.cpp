#include "core/wechatpay/signing.h"

#include <array>
#include <memory>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/wechatpay/encoding.h"

namespace callbackd::wechatpay {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// Fetched once: an implicit fetch by name inside every EVP_DigestSignInit_ex would be a
// measurable share of a 2048-bit signature's cost on a busy tenant.
const EVP_MD* sha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

void append_line(std::string& out, std::string_view value) {
  out.append(value);
  out += '\n';
}

}  // namespace

std::string request_message(std::string_view method, std::string_view request_uri, std::int64_t timestamp,
                            std::string_view nonce, std::string_view body) {
  const std::string ts = std::to_string(timestamp);
  std::string message;
  message.reserve(method.size() + request_uri.size() + ts.size() + nonce.size() + body.size() + 5);
  append_line(message, method);
  append_line(message, request_uri);
  append_line(message, ts);
  append_line(message, nonce);
  append_line(message, body);
  return message;
}

std::string response_message(std::string_view timestamp, std::string_view nonce, std::string_view body) {
  std::string message;
  message.reserve(timestamp.size() + nonce.size() + body.size() + 3);
  append_line(message, timestamp);
  append_line(message, nonce);
  append_line(message, body);
  return message;
}

Result<std::string, CryptoError> sign_sha256_rsa(const PrivateKey& key, std::string_view message) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const EVP_MD* md = sha256();
  if (!ctx || md == nullptr) return CryptoError{"cannot allocate a signing context"};
  // RSA keys default to PKCS#1 v1.5 padding for signatures, which is what v3 specifies.
  if (EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key.native()) != 1) {
    ERR_clear_error();
    return CryptoError{"cannot initialise SHA256withRSA signing"};
  }
  std::array<unsigned char, 1024> signature{};  // room for RSA up to 8192 bits
  std::size_t length = signature.size();
  if (static_cast<std::size_t>(EVP_PKEY_get_size(key.native())) > signature.size()) {
    return CryptoError{"key too large to sign with"};
  }
  if (EVP_DigestSign(ctx.get(), signature.data(), &length, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    ERR_clear_error();
    return CryptoError{"SHA256withRSA signing failed"};
  }
  return base64_encode(std::string_view(reinterpret_cast<const char*>(signature.data()), length));
}

SignatureCheck verify_sha256_rsa(const VerificationKey& key, std::string_view message,
                                 std::string_view signature_base64) {
  // A 2048-bit signature is 344 base64 characters; cap before decoding anything hostile.
  if (signature_base64.size() > 2048) return SignatureCheck::bad_signature;
  const auto signature = base64_decode(signature_base64);
  if (!signature) return SignatureCheck::bad_base64;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const EVP_MD* md = sha256();
  if (!ctx || md == nullptr) return SignatureCheck::bad_signature;
  bool valid = EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key.native()) == 1 &&
               EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()), signature->size(),
                                reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  ERR_clear_error();
  return valid ? SignatureCheck::valid : SignatureCheck::bad_signature;
}

bool openssl_random_bytes(unsigned char* out, std::size_t size) {
  return size <= 0x7FFFFFFF && RAND_bytes(out, static_cast<int>(size)) == 1;
}

Result<std::string, CryptoError> make_nonce(const RandomBytes& random) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  static_assert(sizeof kAlphabet - 1 == 62);
  // 248 = 4 * 62: bytes at or above it would make the first 8 characters more likely.
  constexpr unsigned kLimit = 248;
  std::string nonce;
  nonce.reserve(kNonceLength);
  std::array<unsigned char, 48> pool{};
  // Each byte is accepted with probability 248/256, so 48 bytes almost always suffice; the
  // round cap turns a broken generator (e.g. all 0xFF) into an error instead of a hang.
  for (int round = 0; round < 64 && nonce.size() < kNonceLength; ++round) {
    if (!random(pool.data(), pool.size())) return CryptoError{"the random number generator failed"};
    for (unsigned char byte : pool) {
      if (byte >= kLimit) continue;
      nonce += kAlphabet[byte % 62];
      if (nonce.size() == kNonceLength) break;
    }
  }
  if (nonce.size() != kNonceLength) return CryptoError{"the random number generator returned biased output"};
  return nonce;
}

std::optional<std::string> merchant_serial_no_problem(std::string_view serial_no) {
  if (serial_no.empty()) return "the merchant certificate serial is empty";
  bool all_digits = true;
  bool lower = false;
  for (char c : serial_no) {
    const bool digit = c >= '0' && c <= '9';
    all_digits = all_digits && digit;
    if (c >= 'a' && c <= 'f') {
      lower = true;
    } else if (!digit && !(c >= 'A' && c <= 'F')) {
      return "the merchant certificate serial must be hexadecimal (0-9, A-F)";
    }
  }
  if (serial_no.size() > 40)
    return all_digits ? "the merchant certificate serial looks decimal; WeChat Pay expects it in uppercase hex "
                        "(openssl x509 -in apiclient_cert.pem -noout -serial)"
                      : "the merchant certificate serial is longer than 40 hex digits";
  if (lower) return "the merchant certificate serial must be uppercase hex";
  return std::nullopt;
}

namespace {
// Printable ASCII without '"' and '\\': what parse_authorization accepts inside quotes.
bool safe_in_header(std::string_view value) {
  for (char c : value)
    if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') return false;
  return !value.empty();
}
}  // namespace

Result<std::string, CryptoError> authorization_header(const MerchantCredentials& merchant, std::string_view method,
                                                      std::string_view request_uri, std::string_view body,
                                                      std::int64_t timestamp, std::string_view nonce) {
  if (!safe_in_header(merchant.caller_mchid) || !safe_in_header(merchant.serial_no) || !safe_in_header(nonce))
    return CryptoError{"mchid, serial_no and nonce must be non-empty printable ASCII without quotes or backslashes"};
  auto signature = sign_sha256_rsa(merchant.private_key, request_message(method, request_uri, timestamp, nonce, body));
  if (!signature) return std::move(signature).error();
  std::string header;
  header.reserve(kSignatureScheme.size() + merchant.caller_mchid.size() + merchant.serial_no.size() + nonce.size() +
                 signature->size() + 96);
  header.append(kSignatureScheme);
  header.append(" mchid=\"").append(merchant.caller_mchid);
  header.append("\",nonce_str=\"").append(nonce);
  header.append("\",timestamp=\"").append(std::to_string(timestamp));
  header.append("\",serial_no=\"").append(merchant.serial_no);
  header.append("\",signature=\"").append(*signature);
  header.append("\"");
  return header;
}

}  // namespace callbackd::wechatpay
