// libFuzzer target: the update_time parsers (RFC 3339, and the seed's prose form).
// Property: anything accepted formats to UTC and parses back to the same instant; whatever
// parse_rfc3339 accepts, parse_update_time accepts as the same instant.
#include <cstdint>

#include "core/wechatpay/update_time.h"
#include "fuzz_support.h"

using namespace callbackd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto strict = wechatpay::parse_rfc3339(text);
  const auto t = wechatpay::parse_update_time(text);
  if (strict) fuzz::require(t == strict);
  if (!t) return 0;
  fuzz::require(size >= 20 && size <= 35);
  const std::string utc = wechatpay::format_rfc3339_utc(*t);
  const auto again = wechatpay::parse_rfc3339(utc);
  fuzz::require(again.has_value() && *again == *t);
  return 0;
}
