#include "core/wechatpay/verification.h"

#include "core/wechatpay/encoding.h"
#include "core/wechatpay/signing.h"

namespace callbackd::wechatpay {
namespace {

constexpr std::size_t kExcerptBytes = 64;

// Certificate serials are hex numbers: compare them as numbers written in hex, so that
// "0A1B" and "a1b" name the same certificate, whatever case or padding a source used.
std::string normalise_serial(std::string_view serial) {
  std::string out;
  out.reserve(serial.size());
  for (char c : serial) out += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  const std::size_t first = out.find_first_not_of('0');
  return first == std::string::npos ? std::string("0") : out.substr(first);
}

bool is_hex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

VerifyError fail(VerifyError::Kind kind, std::string message) { return VerifyError{kind, std::move(message)}; }

std::string quoted(std::string_view value) { return "\"" + excerpt(value, kExcerptBytes) + "\""; }

}  // namespace

Result<std::monostate, KeyError> KeySet::add(std::string key_id, VerificationKey key) {
  if (key.certificate() && !key_id.starts_with(kPublicKeyIdPrefix) &&
      normalise_serial(key_id) != normalise_serial(key.certificate()->serial_hex)) {
    return KeyError{
        KeyError::Kind::serial_mismatch,
        "key id " + quoted(key_id) + " is not the serial of its certificate (" + key.certificate()->serial_hex + ")",
        "set wechatpay_key_id to " + key.certificate()->serial_hex};
  }
  keys_.insert_or_assign(std::move(key_id), std::move(key));
  return std::monostate{};
}

Result<std::monostate, KeyError> KeySet::add_certificate(VerificationKey certificate) {
  if (!certificate.certificate())
    return KeyError{KeyError::Kind::not_a_key, "a public key was given where a certificate is expected",
                    "register it with its PUB_KEY_ID_ id"};
  std::string serial = certificate.certificate()->serial_hex;
  return add(std::move(serial), std::move(certificate));
}

const VerificationKey* KeySet::find(std::string_view key_id) const {
  if (auto it = keys_.find(key_id); it != keys_.end()) return &it->second;
  if (key_id.starts_with(kPublicKeyIdPrefix) || !is_hex(key_id)) return nullptr;
  const std::string wanted = normalise_serial(key_id);
  for (const auto& [id, key] : keys_)
    if (!id.starts_with(kPublicKeyIdPrefix) && is_hex(id) && normalise_serial(id) == wanted) return &key;
  return nullptr;
}

std::vector<std::string> KeySet::key_ids() const {
  std::vector<std::string> ids;
  ids.reserve(keys_.size());
  for (const auto& entry : keys_) ids.push_back(entry.first);
  return ids;
}

std::string_view verify_error_name(VerifyError::Kind kind) {
  switch (kind) {
    case VerifyError::Kind::missing_header:
      return "missing_header";
    case VerifyError::Kind::unsupported_signature_type:
      return "unsupported_signature_type";
    case VerifyError::Kind::unknown_serial:
      return "unknown_serial";
    case VerifyError::Kind::bad_timestamp:
      return "bad_timestamp";
    case VerifyError::Kind::stale_timestamp:
      return "stale_timestamp";
    case VerifyError::Kind::bad_base64:
      return "bad_base64";
    case VerifyError::Kind::bad_signature:
      return "bad_signature";
  }
  return "unknown";
}

Result<VerifiedResponse, VerifyError> verify_response(const KeySet& keys, const ResponseHeaders& headers,
                                                      std::string_view raw_body,
                                                      std::chrono::system_clock::time_point now) {
  const std::pair<const std::optional<std::string>*, std::string_view> required[] = {
      {&headers.timestamp, kHeaderTimestamp},
      {&headers.nonce, kHeaderNonce},
      {&headers.signature, kHeaderSignature},
      {&headers.serial, kHeaderSerial},
  };
  for (const auto& [value, name] : required)
    if (!*value || (*value)->empty())
      return fail(VerifyError::Kind::missing_header, "response has no " + std::string(name) + " header");

  if (headers.signature_type && *headers.signature_type != kSignatureScheme)
    return fail(VerifyError::Kind::unsupported_signature_type, "unsupported " + std::string(kHeaderSignatureType) +
                                                                   " " + quoted(*headers.signature_type) +
                                                                   " (expected " + std::string(kSignatureScheme) + ")");

  const std::string& ts_text = *headers.timestamp;
  std::int64_t ts = 0;
  bool digits_ok = ts_text.size() <= 18;
  for (char c : ts_text) {
    if (c < '0' || c > '9') {
      digits_ok = false;
      break;
    }
    if (digits_ok) ts = ts * 10 + (c - '0');
  }
  if (!digits_ok)
    return fail(VerifyError::Kind::bad_timestamp,
                std::string(kHeaderTimestamp) + " " + quoted(ts_text) + " is not Unix seconds");
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::int64_t skew = now_s > ts ? now_s - ts : ts - now_s;
  if (skew >= kMaxClockSkew.count())
    return fail(VerifyError::Kind::stale_timestamp,
                std::string(kHeaderTimestamp) + " " + ts_text + " is " + std::to_string(skew) +
                    " s away from our clock (limit 300 s); check NTP on this machine");

  const VerificationKey* key = keys.find(*headers.serial);
  if (key == nullptr) {
    std::string known;
    for (const auto& id : keys.key_ids()) known += (known.empty() ? "" : ", ") + id;
    return fail(VerifyError::Kind::unknown_serial,
                std::string(kHeaderSerial) + " " + quoted(*headers.serial) +
                    " is not a key of this tenant (known: " + (known.empty() ? "none" : excerpt(known, 256)) + ")");
  }

  switch (verify_sha256_rsa(*key, response_message(ts_text, *headers.nonce, raw_body), *headers.signature)) {
    case SignatureCheck::valid:
      return VerifiedResponse{*headers.serial};
    case SignatureCheck::bad_base64:
      return fail(VerifyError::Kind::bad_base64, std::string(kHeaderSignature) + " is not valid base64");
    case SignatureCheck::bad_signature:
      break;
  }
  return fail(VerifyError::Kind::bad_signature,
              std::string(kHeaderSignature) + " does not verify under key " + quoted(*headers.serial));
}

Result<ResponseSignature, CryptoError> sign_response(const PrivateKey& platform_key, std::string_view key_id,
                                                     std::string_view body, std::int64_t timestamp,
                                                     std::string_view nonce) {
  ResponseSignature out;
  out.timestamp = std::to_string(timestamp);
  out.nonce = nonce;
  out.serial = key_id;
  auto signature = sign_sha256_rsa(platform_key, response_message(out.timestamp, out.nonce, body));
  if (!signature) return std::move(signature).error();
  out.signature = std::move(signature).value();
  return out;
}

}  // namespace callbackd::wechatpay
