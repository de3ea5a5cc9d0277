// update_time of the favor/callbacks 200 response: RFC 3339, e.g.
// "2015-05-20T13:29:35.120+08:00" (seed document). Pure; never throws.
//
// The seed's prose describes the form as "YYYY-MM-DDTHH:mm:ss:sss+TIMEZONE", with a colon
// before the milliseconds, while its example uses RFC 3339's period. An API that writes what
// its documentation says may send either, so parse_update_time accepts both; parse_rfc3339
// stays strict.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd::wechatpay {

using UtcMillis = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

// Accepts YYYY-MM-DDTHH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM), 'T' also as 't' (RFC 3339 5.6),
// 1-9 fraction digits (kept to the millisecond, truncated), a real calendar date
// (leap years), hours 00-23, minutes 00-59, seconds 00-60 (a leap second is taken as :59.999),
// offsets up to ±23:59, a UTC instant within years 0000-9999. Returns the instant in UTC; nullopt for anything else (no
// surrounding whitespace, no missing fields, no out-of-range values).
std::optional<UtcMillis> parse_rfc3339(std::string_view text);

// What WeChat Pay may write as update_time: RFC 3339 (parse_rfc3339), or the seed's prose form
// "2015-05-20T13:29:35:120+08:00" (exactly three millisecond digits after a colon in place of
// RFC 3339's period, same ranges and offsets). nullopt for anything else: the caller keeps the
// text verbatim and records no parsed instant.
std::optional<UtcMillis> parse_update_time(std::string_view text);

// "2015-05-20T05:29:35.120Z": the canonical UTC form, for logs and the database.
std::string format_rfc3339_utc(UtcMillis t);

}  // namespace callbackd::wechatpay
