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
  // nullopt when update_time is absent or in no form parse_update_time knows: the text is
  // still kept, and the change was still applied (see outcome.h).
  std::optional<UtcMillis> update_time;
  std::string update_time_text;  // as WeChat Pay wrote it (at most 64 bytes), for the audit log; "" if absent
  std::string notify_url;        // as WeChat Pay echoed it (the seed's example omits the scheme); "" if absent
};
struct BodyError {
  std::string message;  // "update_time is not RFC 3339: \"…\"" (values truncated)
};
// Strict: the documented body, update_time in a form parse_update_time accepts.
Result<FavorCallbacksApplied, BodyError> parse_favor_callbacks_response(std::string_view body);

// Lenient, for a 2xx whose signature verified (WeChat Pay applied the change whatever the
// body says): whatever of the documented fields can be read, and what was not as documented.
struct FavorCallbacksReading {
  FavorCallbacksApplied applied;
  std::optional<BodyError> problem;  // nullopt exactly when parse_favor_callbacks_response succeeds
};
FavorCallbacksReading read_favor_callbacks_response(std::string_view body);

// A v3 error body {"code":"PARAM_ERROR","message":"…","detail":{…}}. Every field optional:
// a proxy's HTML error page parses to an empty ApiError, not a failure.
struct ApiError {
  // WeChat Pay's error format: a JSON object with a non-empty string "code" and a string
  // "message". Only such a body carries WeChat Pay's verdict on a request (outcome.h); a
  // proxy's or a gateway's page (HTML, empty, {"message":…} alone, a numeric code) does not.
  bool wechatpay_format = false;
  std::string code;     // "" when absent or not a string; at most 64 bytes kept
  std::string message;  // "" when absent; an excerpt (encoding.h): at most kMaxErrorMessageBytes
                        // of the text, cut on a UTF-8 boundary, control characters as '?',
                        // "…(N bytes)" appended when cut
};
inline constexpr std::size_t kMaxErrorMessageBytes = 512;
ApiError parse_error_body(std::string_view body);

}  // namespace callbackd::wechatpay
