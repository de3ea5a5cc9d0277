// The SHA256withRSA primitive of WeChat Pay API v3 and the messages it signs
// (docs/wechatpay-v3.md sections 1 and 2). Everything here is pure apart from the key
// operations: timestamps and nonces are parameters, so a signature is reproducible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/wechatpay/keys.h"

namespace callbackd::wechatpay {

// The only scheme WeChat Pay v3 defines; used in Authorization and Wechatpay-Signature-Type.
inline constexpr std::string_view kSignatureScheme = "WECHATPAY2-SHA256-RSA2048";

// "METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n". `request_uri` is path plus "?query" exactly as
// sent, without scheme or host. An empty body (GET) gives "...NONCE\n\n". A value that already
// ends in "\n" still gets another one.
std::string request_message(std::string_view method, std::string_view request_uri, std::int64_t timestamp,
                            std::string_view nonce, std::string_view body);

// "TIMESTAMP\nNONCE\nBODY\n" over the raw response body (empty body: "TIMESTAMP\nNONCE\n\n").
std::string response_message(std::string_view timestamp, std::string_view nonce, std::string_view body);

// SHA256withRSA, PKCS#1 v1.5, standard base64. Deterministic: the same key and message give
// the same signature. Thread-safe.
Result<std::string, CryptoError> sign_sha256_rsa(const PrivateKey& key, std::string_view message);

enum class SignatureCheck {
  valid,
  bad_base64,     // the signature is not strict standard base64
  bad_signature,  // decodes, but does not verify under this key for this message
};
// Never throws; any garbage in `signature_base64` is bad_base64 or bad_signature.
SignatureCheck verify_sha256_rsa(const VerificationKey& key, std::string_view message,
                                 std::string_view signature_base64);

// Fills `out` with `size` cryptographically secure random bytes; false on failure.
// A parameter so that tests can drive the nonce generator deterministically.
using RandomBytes = std::function<bool(unsigned char* out, std::size_t size)>;
bool openssl_random_bytes(unsigned char* out, std::size_t size);  // RAND_bytes

inline constexpr std::size_t kNonceLength = 32;
// 32 characters of [0-9A-Za-z], uniformly distributed: random bytes are drawn and any byte
// >= 248 (the largest multiple of 62 below 256) is rejected, so there is no modulo bias.
Result<std::string, CryptoError> make_nonce(const RandomBytes& random = openssl_random_bytes);

// Who signs a request: the TENANT (calling merchant), not the sub-merchant in the body.
struct MerchantCredentials {
  std::string caller_mchid;  // the tenant's merchant id
  std::string serial_no;     // its API certificate serial, uppercase hex
  PrivateKey private_key;
};

// nullopt when `serial_no` looks like a merchant API certificate serial as WeChat Pay expects
// it: 1-40 uppercase hex digits. Otherwise why not, e.g. lower case, or a long all-digit value
// (a certificate serial written in decimal: a classic cause of 401 SIGN_ERROR). For
// check-config and tenant loading.
std::optional<std::string> merchant_serial_no_problem(std::string_view serial_no);

// The value of the Authorization header for one request:
//   WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"
// `body` must be exactly the bytes that will be sent. Pure apart from the RSA operation.
// Refused (CryptoError) when mchid, serial_no or nonce hold anything but printable ASCII
// without '"' and '\\': such a value would break the header (or inject another one).
Result<std::string, CryptoError> authorization_header(const MerchantCredentials& merchant, std::string_view method,
                                                      std::string_view request_uri, std::string_view body,
                                                      std::int64_t timestamp, std::string_view nonce);

}  // namespace callbackd::wechatpay
