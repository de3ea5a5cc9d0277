#include "core/wechatpay/authorization.h"

#include <array>

#include "core/wechatpay/encoding.h"
#include "core/wechatpay/signing.h"
#include "core/wechatpay/verification.h"

namespace callbackd::wechatpay {
namespace {

constexpr std::size_t kMaxHeaderBytes = 4096;
constexpr std::size_t kExcerptBytes = 32;

AuthorizationError fail(std::string message) { return AuthorizationError{std::move(message)}; }

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

// Printable ASCII minus '"' and '\\': what an mchid, nonce, decimal timestamp, hex serial or
// base64 signature can hold. No escapes are defined by v3, so none are accepted.
bool is_value_char(char c) { return c >= 0x20 && c < 0x7F && c != '"' && c != '\\'; }

bool parse_timestamp(std::string_view digits, std::int64_t& out) {
  if (digits.empty() || digits.size() > 18) return false;  // 18 digits cannot overflow int64
  std::int64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  return true;
}

}  // namespace

Result<AuthorizationFields, AuthorizationError> parse_authorization(std::string_view header) {
  if (header.size() > kMaxHeaderBytes)
    return fail("Authorization header is " + std::to_string(header.size()) + " bytes, more than 4096");
  if (header.substr(0, kSignatureScheme.size()) != kSignatureScheme)
    return fail("Authorization scheme is not " + std::string(kSignatureScheme) + ": \"" +
                excerpt(header, kExcerptBytes) + "\"");
  std::size_t pos = kSignatureScheme.size();
  if (pos >= header.size() || header[pos] != ' ') return fail("Authorization scheme must be followed by a space");
  while (pos < header.size() && header[pos] == ' ') ++pos;

  enum Field { kMchid, kNonce, kTimestamp, kSerial, kSignature, kFieldCount };
  static constexpr std::array<std::string_view, kFieldCount> kNames = {"mchid", "nonce_str", "timestamp", "serial_no",
                                                                       "signature"};
  std::array<bool, kFieldCount> seen{};
  AuthorizationFields fields;
  std::string timestamp_text;

  while (true) {
    const std::size_t name_start = pos;
    while (pos < header.size() && is_name_char(header[pos])) ++pos;
    const std::string_view name = header.substr(name_start, pos - name_start);
    if (name.empty()) return fail("Authorization: expected a field name at offset " + std::to_string(pos));
    std::size_t index = kFieldCount;
    for (std::size_t i = 0; i < kFieldCount; ++i)
      if (kNames[i] == name) index = i;
    if (index == kFieldCount) return fail("Authorization: unknown field \"" + excerpt(name, kExcerptBytes) + "\"");
    if (seen[index]) return fail("Authorization: field " + std::string(name) + " appears twice");
    seen[index] = true;
    if (pos + 1 >= header.size() || header[pos] != '=' || header[pos + 1] != '"')
      return fail("Authorization: field " + std::string(name) + " must be followed by =\"value\"");
    pos += 2;
    const std::size_t value_start = pos;
    while (pos < header.size() && is_value_char(header[pos])) ++pos;
    if (pos >= header.size() || header[pos] != '"')
      return fail("Authorization: value of " + std::string(name) + " is unterminated or holds a forbidden character");
    const std::string_view value = header.substr(value_start, pos - value_start);
    ++pos;  // closing quote
    if (value.empty()) return fail("Authorization: field " + std::string(name) + " is empty");
    switch (index) {
      case kMchid:
        fields.caller_mchid = value;
        break;
      case kNonce:
        fields.nonce_str = value;
        break;
      case kTimestamp:
        if (!parse_timestamp(value, fields.timestamp))
          return fail("Authorization: timestamp \"" + excerpt(value, kExcerptBytes) + "\" is not Unix seconds");
        break;
      case kSerial:
        fields.serial_no = value;
        break;
      case kSignature:
        fields.signature = value;
        break;
      default:
        break;
    }
    while (pos < header.size() && header[pos] == ' ') ++pos;
    if (pos == header.size()) break;
    if (header[pos] != ',') return fail("Authorization: expected ',' at offset " + std::to_string(pos));
    ++pos;
    while (pos < header.size() && header[pos] == ' ') ++pos;
  }
  for (std::size_t i = 0; i < kFieldCount; ++i)
    if (!seen[i]) return fail("Authorization: field " + std::string(kNames[i]) + " is missing");
  return fields;
}

RequestCheck verify_request(const AuthorizationFields& fields, const VerificationKey& merchant_key,
                            std::string_view method, std::string_view request_uri, std::string_view body,
                            std::chrono::system_clock::time_point now) {
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::int64_t skew = now_s > fields.timestamp ? now_s - fields.timestamp : fields.timestamp - now_s;
  if (skew >= kMaxClockSkew.count()) return RequestCheck::stale_timestamp;
  const auto message = request_message(method, request_uri, fields.timestamp, fields.nonce_str, body);
  switch (verify_sha256_rsa(merchant_key, message, fields.signature)) {
    case SignatureCheck::valid:
      return RequestCheck::valid;
    case SignatureCheck::bad_base64:
      return RequestCheck::bad_base64;
    case SignatureCheck::bad_signature:
      return RequestCheck::bad_signature;
  }
  return RequestCheck::bad_signature;
}

}  // namespace callbackd::wechatpay
