#include "core/wechatpay/update_time.h"

#include <cstdint>
#include <cstdio>

namespace callbackd::wechatpay {
namespace {

// Reads exactly `n` decimal digits at `pos`; -1 when any is missing or not a digit.
int digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return -1;
  int value = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
  }
  return value;
}

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

}  // namespace

std::optional<UtcMillis> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  // 2015-05-20T13:29:35.120+08:00
  // 0123456789012345678
  const int year = digits(s, 0, 4);
  const int month = s.size() > 4 && s[4] == '-' ? digits(s, 5, 2) : -1;
  const int day = s.size() > 7 && s[7] == '-' ? digits(s, 8, 2) : -1;
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return std::nullopt;
  if (s.size() <= 10 || (s[10] != 'T' && s[10] != 't')) return std::nullopt;
  const int hour = digits(s, 11, 2);
  const int minute = s.size() > 13 && s[13] == ':' ? digits(s, 14, 2) : -1;
  int second = s.size() > 16 && s[16] == ':' ? digits(s, 17, 2) : -1;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60) return std::nullopt;
  std::size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && pos - start < 9) {
      if (pos - start < 3) millis = millis * 10 + (s[pos] - '0');
      ++pos;
    }
    const std::size_t count = pos - start;
    if (count == 0) return std::nullopt;
    for (std::size_t i = count; i < 3; ++i) millis *= 10;
  }
  if (pos >= s.size()) return std::nullopt;  // the offset is mandatory
  int offset_minutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    const int sign = s[pos] == '-' ? -1 : 1;
    const int oh = digits(s, pos + 1, 2);
    const int om = pos + 3 < s.size() && s[pos + 3] == ':' ? digits(s, pos + 4, 2) : -1;
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  if (second == 60) {  // a leap second: the instant just before the next minute
    second = 59;
    millis = 999;
  }
  const sys_days date = year_month_day{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                                       std::chrono::day{static_cast<unsigned>(day)}};
  const UtcMillis instant{time_point_cast<milliseconds>(date) + hours{hour} + minutes{minute} + seconds{second} +
                          milliseconds{millis} - minutes{offset_minutes}};
  // An offset can carry 0000-01-01 or 9999-12-31 out of the four-digit years that RFC 3339
  // (and format_rfc3339_utc) can write; such an instant has no canonical form, so refuse it.
  const int utc_year = static_cast<int>(year_month_day{floor<days>(instant)}.year());
  if (utc_year < 0 || utc_year > 9999) return std::nullopt;
  return instant;
}

std::optional<UtcMillis> parse_update_time(std::string_view s) {
  if (auto t = parse_rfc3339(s)) return t;
  // 2015-05-20T13:29:35:120+08:00: the seed's "HH:mm:ss:sss". Only with three digits, so that
  // a stray colon elsewhere is not taken for it; then it is RFC 3339 with a period there.
  constexpr std::size_t kColon = 19;
  if (s.size() <= kColon + 4 || s[kColon] != ':' || digits(s, kColon + 1, 3) < 0) return std::nullopt;
  const char after = s[kColon + 4];
  if (after >= '0' && after <= '9') return std::nullopt;
  std::string rfc3339(s);
  rfc3339[kColon] = '.';
  return parse_rfc3339(rfc3339);
}

std::string format_rfc3339_utc(UtcMillis t) {
  using namespace std::chrono;
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  auto ms = (t - day).count();  // milliseconds into the day
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), static_cast<int>(ms / 3'600'000),
                static_cast<int>(ms / 60'000 % 60), static_cast<int>(ms / 1000 % 60), static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace callbackd::wechatpay
