// Verifying WeChat Pay's response signatures (client side) and producing them (sandbox side).
// docs/wechatpay-v3.md section 2: message "TIMESTAMP\nNONCE\nRAW_BODY\n", key chosen by
// Wechatpay-Serial, |now - timestamp| >= 300 s refused. Only 2xx responses are verified.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/wechatpay/keys.h"

namespace callbackd::wechatpay {

inline constexpr std::string_view kPublicKeyIdPrefix = "PUB_KEY_ID_";
inline constexpr std::chrono::seconds kMaxClockSkew{300};

// The keys one tenant accepts response signatures from, by key id (Wechatpay-Serial). Holds
// WeChat Pay public keys (id "PUB_KEY_ID_…") and platform certificates (id = certificate
// serial, uppercase hex) side by side, several at once during rotation or a migration from
// certificates to public-key mode. A value: build a new one to rotate, share it read-only.
class KeySet {
 public:
  // Registers `key` under `key_id`, replacing any previous key with that id.
  // Refused (serial_mismatch) when `key` is a certificate and `key_id` is neither its serial
  // (compared case-insensitively, leading zeros ignored) nor a PUB_KEY_ID_ id.
  Result<std::monostate, KeyError> add(std::string key_id, VerificationKey key);
  // A certificate under its own serial.
  Result<std::monostate, KeyError> add_certificate(VerificationKey certificate);

  // The key for a Wechatpay-Serial value (exact match, then a case-insensitive hex match for
  // certificate serials); nullptr when unknown.
  const VerificationKey* find(std::string_view key_id) const;
  std::vector<std::string> key_ids() const;
  bool empty() const noexcept { return keys_.empty(); }

 private:
  std::map<std::string, VerificationKey, std::less<>> keys_;
};

// The response headers that matter, as received (the transport fills this from its header
// map; header names are case-insensitive on the wire). nullopt: header absent.
struct ResponseHeaders {
  std::optional<std::string> timestamp;       // Wechatpay-Timestamp
  std::optional<std::string> nonce;           // Wechatpay-Nonce
  std::optional<std::string> signature;       // Wechatpay-Signature
  std::optional<std::string> serial;          // Wechatpay-Serial
  std::optional<std::string> signature_type;  // Wechatpay-Signature-Type (absent: assume RSA2048)
  std::optional<std::string> request_id;      // Request-ID (not signed; for the audit log)
  std::optional<std::string> retry_after;     // Retry-After (429/503)
};

// Header names as WeChat Pay spells them, for the transport and the sandbox.
inline constexpr std::string_view kHeaderTimestamp = "Wechatpay-Timestamp";
inline constexpr std::string_view kHeaderNonce = "Wechatpay-Nonce";
inline constexpr std::string_view kHeaderSignature = "Wechatpay-Signature";
inline constexpr std::string_view kHeaderSerial = "Wechatpay-Serial";
inline constexpr std::string_view kHeaderSignatureType = "Wechatpay-Signature-Type";
inline constexpr std::string_view kHeaderRequestId = "Request-ID";
inline constexpr std::string_view kHeaderRetryAfter = "Retry-After";

struct VerifyError {
  enum class Kind {
    missing_header,              // one of Timestamp, Nonce, Signature, Serial absent (or empty)
    unsupported_signature_type,  // Wechatpay-Signature-Type other than WECHATPAY2-SHA256-RSA2048
    unknown_serial,              // Wechatpay-Serial not in the tenant's KeySet
    bad_timestamp,               // Wechatpay-Timestamp not 1-18 decimal digits
    stale_timestamp,             // |now - timestamp| >= 300 s
    bad_base64,                  // Wechatpay-Signature is not strict base64
    bad_signature,               // does not verify under the selected key
  };
  Kind kind;
  std::string message;  // for the operator; echoes header values only truncated
};

// Stable snake_case name of a kind ("missing_header", "unknown_serial", …), for logs/metrics.
std::string_view verify_error_name(VerifyError::Kind kind);

struct VerifiedResponse {
  std::string key_id;  // which key verified it (Wechatpay-Serial)
};

// Checks, in this order: headers present, signature type, timestamp syntax, skew against
// `now`, serial known, base64, signature. Never throws, whatever the headers hold.
Result<VerifiedResponse, VerifyError> verify_response(const KeySet& keys, const ResponseHeaders& headers,
                                                      std::string_view raw_body,
                                                      std::chrono::system_clock::time_point now);

// What the sandbox attaches to a response (values of the Wechatpay-* headers).
struct ResponseSignature {
  std::string timestamp;  // decimal Unix seconds
  std::string nonce;
  std::string signature;  // base64
  std::string serial;     // key id the client selects the verifying key by
  std::string signature_type{"WECHATPAY2-SHA256-RSA2048"};
};

// Signs `body` as WeChat Pay does with the platform private key registered under `key_id`.
// The same SHA256withRSA primitive as requests; `timestamp` and `nonce` are parameters.
Result<ResponseSignature, CryptoError> sign_response(const PrivateKey& platform_key, std::string_view key_id,
                                                     std::string_view body, std::int64_t timestamp,
                                                     std::string_view nonce);

}  // namespace callbackd::wechatpay
