// update_time: RFC 3339 with offset and optional fraction, to a UTC instant.
#include <catch2/catch.hpp>

#include "core/wechatpay/update_time.h"

using namespace callbackd::wechatpay;

TEST_CASE("parse_rfc3339 accepts the forms WeChat Pay and RFC 3339 allow", "[wechatpay][update_time]") {
  struct Row {
    const char* text;
    const char* utc;
  };
  const Row rows[] = {
      {"2015-05-20T13:29:35.120+08:00", "2015-05-20T05:29:35.120Z"},  // the seed's example
      {"2015-05-20T05:29:35.120Z", "2015-05-20T05:29:35.120Z"},
      {"2015-05-20T05:29:35Z", "2015-05-20T05:29:35.000Z"},
      {"2015-05-20T13:29:35+08:00", "2015-05-20T05:29:35.000Z"},
      {"2015-05-20t05:29:35z", "2015-05-20T05:29:35.000Z"},
      {"2015-05-20T05:29:35.1Z", "2015-05-20T05:29:35.100Z"},
      {"2015-05-20T05:29:35.12Z", "2015-05-20T05:29:35.120Z"},
      {"2015-05-20T05:29:35.123456789Z", "2015-05-20T05:29:35.123Z"},  // truncated, not rounded
      {"2015-05-20T05:29:35.999999Z", "2015-05-20T05:29:35.999Z"},
      {"2015-05-20T00:10:00.000+08:00", "2015-05-19T16:10:00.000Z"},  // crosses a day
      {"2015-12-31T20:00:00-05:00", "2016-01-01T01:00:00.000Z"},      // crosses a year
      {"2016-02-29T12:00:00Z", "2016-02-29T12:00:00.000Z"},           // leap day
      {"2000-02-29T12:00:00Z", "2000-02-29T12:00:00.000Z"},           // 400-year leap
      {"2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999Z"},           // leap second
      {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"},
      {"2015-05-20T05:29:35+23:59", "2015-05-19T05:30:35.000Z"},
      {"2015-05-20T05:29:35-00:00", "2015-05-20T05:29:35.000Z"},
      {"0000-01-01T08:00:00+08:00", "0000-01-01T00:00:00.000Z"},
      {"9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    const auto t = parse_rfc3339(row.text);
    REQUIRE(t.has_value());
    CHECK(format_rfc3339_utc(*t) == row.utc);
  }
  CHECK(parse_rfc3339("1970-01-01T00:00:01.5Z")->time_since_epoch() == std::chrono::milliseconds(1500));
}

TEST_CASE("parse_rfc3339 rejects garbage", "[wechatpay][update_time]") {
  const char* rejected[] = {
      "",
      "yesterday",
      "2015-05-20",
      "2015-05-20T13:29:35",              // no offset
      "2015-05-20 13:29:35Z",             // space instead of T
      "2015-05-20T13:29:35.120+08:00 ",   // trailing space
      " 2015-05-20T13:29:35Z",            // leading space
      "2015-05-20T13:29:35.+08:00",       // empty fraction
      "2015-05-20T13:29:35.1234567890Z",  // 10 fraction digits
      "2015-05-20T13:29:35,120Z",         // comma fraction
      "2015-05-20T13:29:35:120+08:00",    // the seed's prose "HH:mm:ss:sss" is not RFC 3339
      "2015-05-20T13:29:35+0800",         // offset without colon
      "2015-05-20T13:29:35+08",
      "2015-05-20T13:29:35+24:00",
      "2015-05-20T13:29:35+08:60",
      "2015-05-20T24:00:00Z",
      "2015-05-20T13:60:00Z",
      "2015-05-20T13:29:61Z",
      "2015-13-20T13:29:35Z",
      "2015-00-20T13:29:35Z",
      "2015-05-00T13:29:35Z",
      "2015-05-32T13:29:35Z",
      "2015-02-29T13:29:35Z",  // not a leap year
      "1900-02-29T13:29:35Z",  // century, not a leap year
      "2015-04-31T13:29:35Z",
      "15-05-20T13:29:35Z",
      "2015-5-20T13:29:35Z",
      "2015-05-20T1:29:35Z",
      "+2015-05-20T13:29:35Z",
      "2015-05-20T13:29:35ZZ",
      "２０１５-05-20T13:29:35Z",
      "0000-01-01T03:29:35+08:09",  // found by fuzz_update_time: UTC would be year -1
      "9999-12-31T23:00:00-05:00",  // UTC would be year 10000
  };
  for (const char* text : rejected) {
    CAPTURE(text);
    CHECK_FALSE(parse_rfc3339(text).has_value());
  }
  CHECK_FALSE(parse_rfc3339(std::string_view("2015-05-20T13:29:35Z\0", 21)).has_value());
}

TEST_CASE("parse_update_time also accepts the seed's prose form HH:mm:ss:sss", "[wechatpay][update_time]") {
  struct Row {
    const char* text;
    const char* utc;  // nullptr: refused
  };
  const Row rows[] = {
      // Everything parse_rfc3339 accepts.
      {"2015-05-20T13:29:35.120+08:00", "2015-05-20T05:29:35.120Z"},
      {"2015-05-20T05:29:35Z", "2015-05-20T05:29:35.000Z"},
      // The seed's prose: "YYYY-MM-DDTHH:mm:ss:sss+TIMEZONE", a colon before the milliseconds.
      {"2015-05-20T13:29:35:120+08:00", "2015-05-20T05:29:35.120Z"},
      {"2015-05-20T05:29:35:120Z", "2015-05-20T05:29:35.120Z"},
      {"2015-05-20T00:10:00:007+08:00", "2015-05-19T16:10:00.007Z"},
      {"2016-12-31T23:59:60:000Z", "2016-12-31T23:59:59.999Z"},
      // Not that form: exactly three digits, then the offset.
      {"2015-05-20T13:29:35:12+08:00", nullptr},
      {"2015-05-20T13:29:35:1200+08:00", nullptr},
      {"2015-05-20T13:29:35:120", nullptr},
      {"2015-05-20T13:29:35:+08:00", nullptr},
      {"2015-05-20T13:29:35:12a+08:00", nullptr},
      {"2015-05-20T13:29:35:120+08", nullptr},
      {"2015-05-20T13:29:35:120.5+08:00", nullptr},
      {"2015-05-20T13:29:35.120:000+08:00", nullptr},
      {"2015-05-20T13:29:61:120+08:00", nullptr},
      {"2015-02-29T13:29:35:120+08:00", nullptr},
      {"yesterday", nullptr},
      {"", nullptr},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    const auto t = parse_update_time(row.text);
    CHECK(t.has_value() == (row.utc != nullptr));
    if (t && row.utc) CHECK(format_rfc3339_utc(*t) == row.utc);
  }
}
