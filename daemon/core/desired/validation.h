// Validation of a desired row (callbackd.desired_callbacks) before anything is sent. A row
// that fails is marked `invalid` with the message, shown by `status`, and never sent.
// Pure; never throws.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace callbackd::desired {

inline constexpr std::size_t kMaxMchidLength = 20;      // string(20) in the seed
inline constexpr std::size_t kMaxNotifyUrlBytes = 256;  // string(256) in the seed

struct ValidationError {
  std::string field;    // "mchid" or "notify_url"
  std::string message;  // names the field, what is expected and an excerpt of what was found,
                        // e.g. "notify_url must be an absolute https URL, found \"http://a\""
  // audit_log.error_code and sync_status.last_error_code of the invalid row.
  std::string code = "INVALID_DESIRED_ROW";
};

// mchid: 1-20 ASCII digits.
std::optional<ValidationError> validate_mchid(std::string_view mchid);

// notify_url: 1-256 bytes; printable ASCII only (no whitespace, control characters or raw
// non-ASCII; international names must be punycode / percent-encoded), and none of the
// characters RFC 3986 allows nowhere unencoded (" < > \ ^ ` { | }); scheme "https"
// (case-insensitive) followed by "://"; a non-empty host (a DNS name, IPv4 or [IPv6]); an
// optional port of 1-65535; no userinfo ("user@"); no fragment. Path and query are otherwise
// free.
std::optional<ValidationError> validate_notify_url(std::string_view notify_url);

// Both checks; the first failure (mchid before notify_url). One message per failure keeps the
// operator's status line readable; fixing it reveals the next one, if any.
std::optional<ValidationError> validate_desired(std::string_view sub_merchant_mchid, std::string_view notify_url);

}  // namespace callbackd::desired
