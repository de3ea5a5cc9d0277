// The one endpoint callbackd calls: POST /v3/marketing/favor/callbacks (seed document).
// Request body serialisation (done once; the exact string is both signed and sent) and
// defensive parsers for the bodies that come back. Pure; never throws.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/wechatpay/update_time.h"

namespace callbackd::wechatpay {

inline constexpr std::string_view kFavorCallbacksPath = "/v3/marketing/favor/callbacks";

// {"mchid":"…","notify_url":"…"} plus ,"switch":true|false only when `push_switch` is set;
// compact, keys in this order, UTF-8 kept as is (invalid UTF-8 replaced, never thrown on).
// Callers validate the row first (desired/validation.h).
std::string favor_callbacks_request_body(std::string_view sub_merchant_mchid, std::string_view notify_url,
                                         std::optional<bool> push_switch);

// The 200 body: {"update_time": RFC 3339, "notify_url": string}. Unknown fields ignored.
struct FavorCallbacksApplied {
  UtcMillis update_time;
  std::string update_time_text;  // as WeChat Pay wrote it, for the audit log
  std::string notify_url;        // as WeChat Pay echoed it (the seed's example omits the scheme)
};
struct BodyError {
  std::string message;  // "update_time is not RFC 3339: \"…\"" (values truncated)
};
Result<FavorCallbacksApplied, BodyError> parse_favor_callbacks_response(std::string_view body);

// A v3 error body {"code":"PARAM_ERROR","message":"…","detail":{…}}. Every field optional:
// a proxy's HTML error page parses to an empty ApiError, not a failure.
struct ApiError {
  std::string code;     // "" when absent or not a string; at most 64 bytes kept
  std::string message;  // "" when absent; an excerpt (encoding.h): at most kMaxErrorMessageBytes
                        // of the text, cut on a UTF-8 boundary, control characters as '?',
                        // "…(N bytes)" appended when cut
};
inline constexpr std::size_t kMaxErrorMessageBytes = 512;
ApiError parse_error_body(std::string_view body);

}  // namespace callbackd::wechatpay
