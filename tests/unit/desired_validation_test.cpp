// Desired-row validation: every rule, each with the message the operator will see.
#include <catch2/catch.hpp>

#include "core/desired/validation.h"

using namespace callbackd::desired;
using Catch::Matchers::Equals;

TEST_CASE("valid desired rows pass", "[desired][validation]") {
  const std::pair<const char*, const char*> rows[] = {
      {"9856888", "https://pay.weixin.qq.com"},
      {"1", "https://a"},
      {"12345678901234567890", "https://example.com/notify?tenant=1&x=%20"},
      {"1900009191", "HTTPS://EXAMPLE.COM/"},
      {"1900009191", "https://example.com:8443/cb"},
      {"1900009191", "https://192.0.2.1/cb"},
      {"1900009191", "https://[2001:db8::1]:443/cb"},
      {"1900009191", "https://xn--fiqs8s.example/cb"},
      {"1900009191", "https://example.com./cb"},
      {"1900009191", "https://my_host.example.com"},
      {"1900009191", "https://example.com?x"},
      // SQL in a URL is only data: quotes, ';' and '--' are legal URL characters (RFC 3986
      // sub-delims), and the daemon passes every value as a bound parameter and as JSON.
      {"1900009191", "https://x.example.com/';DROP%20TABLE%20callbackd.audit_log;--"},
      {"1900009191", "https://x.example.com/?q=1'OR'1'='1&$$=$$"},
  };
  for (const auto& [mchid, url] : rows) {
    CAPTURE(mchid, url);
    CHECK_FALSE(validate_desired(mchid, url).has_value());
  }
  CHECK_FALSE(validate_notify_url("https://a.example/" + std::string(256 - 18, 'p')).has_value());  // exactly 256
}

TEST_CASE("each invalid desired row gets one clear message", "[desired][validation]") {
  struct Row {
    std::string mchid;
    std::string url;
    std::string field;
    std::string message;
  };
  const std::string ok_url = "https://example.com/cb";
  const std::string long_path = std::string(300, 'a');
  const Row rows[] = {
      {"", ok_url, "mchid", "mchid is empty; expected 1-20 ASCII digits"},
      {"123456789012345678901", ok_url, "mchid",
       "mchid must be 1-20 ASCII digits, found 21 bytes: \"123456789012345678901\""},
      {"98568x8", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"98568x8\""},
      {" 9856888", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \" 9856888\""},
      {"-1", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"-1\""},
      {"１２３", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"１２３\""},  // full-width digits
      {"12\n3", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"12?3\""},
      {"1' OR '1'='1", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"1' OR '1'='1\""},
      {"1;DROP TABLE callbackd.tenants--", ok_url, "mchid",
       "mchid must be 1-20 ASCII digits, found 32 bytes: \"1;DROP TABLE callbackd.tenants--\""},
      {"19\x01"
       "00",
       ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"19?00\""},
      {"\t1900", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"?1900\""},
      {"1900\x7f", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"1900?\""},
      // A right-to-left override would show "1900" as "0091" (and reorder the rest of the
      // line): the message shows '?' in its place.
      {"\u202E1900", ok_url, "mchid", "mchid must be 1-20 ASCII digits, found \"?1900\""},
      {"1", "", "notify_url", "notify_url is empty; expected an absolute https URL of at most 256 bytes"},
      {"1", "https://a.example/" + long_path, "notify_url",
       "notify_url is 318 bytes; expected at most 256, found \"https://a.example/" + std::string(46, 'a') +
           "…(318 bytes)\""},
      {"1", "http://example.com/cb", "notify_url",
       "notify_url must be an absolute https URL (https://host/path), found \"http://example.com/cb\""},
      {"1", "example.com/cb", "notify_url",
       "notify_url must be an absolute https URL (https://host/path), found \"example.com/cb\""},
      {"1", "/cb", "notify_url", "notify_url must be an absolute https URL (https://host/path), found \"/cb\""},
      {"1", "https:/example.com", "notify_url",
       "notify_url must be an absolute https URL (https://host/path), found \"https:/example.com\""},
      {"1", "ftp://example.com", "notify_url",
       "notify_url must be an absolute https URL (https://host/path), found \"ftp://example.com\""},
      {"1", "https://", "notify_url", "notify_url has no host; expected https://host/path, found \"https://\""},
      {"1", "https:///cb", "notify_url", "notify_url has no host; expected https://host/path, found \"https:///cb\""},
      {"1", "https://:443/cb", "notify_url",
       "notify_url has no host; expected https://host/path, found \"https://:443/cb\""},
      {"1", "https://exa mple.com", "notify_url",
       "notify_url contains whitespace or a control character at byte 11; percent-encode it (e.g. %20), found \"https://exa mple.com\""},
      {"1", "https://example.com/cb\n", "notify_url",
       "notify_url contains whitespace or a control character at byte 22; percent-encode it (e.g. %20), found \"https://example.com/cb?\""},
      {"1", "https://example.com/\tcb", "notify_url",
       "notify_url contains whitespace or a control character at byte 20; percent-encode it (e.g. %20), found \"https://example.com/?cb\""},
      {"1", std::string("https://example.com/\0cb", 23), "notify_url",
       "notify_url contains whitespace or a control character at byte 20; percent-encode it (e.g. %20), found \"https://example.com/?cb\""},
      {"1", "https://example.com/\x7f", "notify_url",
       "notify_url contains whitespace or a control character at byte 20; percent-encode it (e.g. %20), found \"https://example.com/?\""},
      {"1",
       "https://example.com/\x01"
       "cb",
       "notify_url",
       "notify_url contains whitespace or a control character at byte 20; percent-encode it (e.g. %20), found \"https://example.com/?cb\""},
      {"1", "https://x.example.com/'; DROP TABLE callbackd.audit_log; --", "notify_url",
       "notify_url contains whitespace or a control character at byte 24; percent-encode it (e.g. %20), found "
       "\"https://x.example.com/'; DROP TABLE callbackd.audit_log; --\""},
      {"1", "https://example.com/\u202Egnp.exe", "notify_url",
       "notify_url contains a non-ASCII byte at byte 20; use punycode for the host and percent-encoding elsewhere, "
       "found \"https://example.com/?gnp.exe\""},
      {"1", "https://example.com/\u2066x", "notify_url",
       "notify_url contains a non-ASCII byte at byte 20; use punycode for the host and percent-encoding elsewhere, "
       "found \"https://example.com/?x\""},
      {"1", "https://example.com/a\"b", "notify_url",
       "notify_url contains '\"' at byte 21, which a URL cannot hold unencoded; percent-encode it (%22), found "
       "\"https://example.com/a\"b\""},
      {"1", "https://example.com/<script>", "notify_url",
       "notify_url contains '<' at byte 20, which a URL cannot hold unencoded; percent-encode it (%3C), found "
       "\"https://example.com/<script>\""},
      {"1", "https://example.com\\@evil.example/", "notify_url",
       "notify_url contains '\\' at byte 19, which a URL cannot hold unencoded; percent-encode it (%5C), found "
       "\"https://example.com\\@evil.example/\""},
      {"1", "https://example.com/?a={x}", "notify_url",
       "notify_url contains '{' at byte 23, which a URL cannot hold unencoded; percent-encode it (%7B), found "
       "\"https://example.com/?a={x}\""},
      {"1", "https://example.com/a|b^c`d", "notify_url",
       "notify_url contains '|' at byte 21, which a URL cannot hold unencoded; percent-encode it (%7C), found "
       "\"https://example.com/a|b^c`d\""},
      {"1", "https://例子.测试/cb", "notify_url",
       "notify_url contains a non-ASCII byte at byte 8; use punycode for the host and percent-encoding elsewhere, found \"https://例子.测试/cb\""},
      {"1", "https://user:pw@example.com/cb", "notify_url",
       "notify_url must not contain user information (user@host), found \"https://user:pw@example.com/cb\""},
      {"1", "https://@example.com/cb", "notify_url",
       "notify_url must not contain user information (user@host), found \"https://@example.com/cb\""},
      {"1", "https://example.com/cb#frag", "notify_url",
       "notify_url must not contain a fragment (#…): it is never sent to the server, found \"https://example.com/cb#frag\""},
      {"1", "https://example.com:/cb", "notify_url",
       "notify_url has an empty port after ':', found \"https://example.com:/cb\""},
      {"1", "https://example.com:0/cb", "notify_url",
       "notify_url has an invalid port; expected 1-65535, found \"https://example.com:0/cb\""},
      {"1", "https://example.com:65536/cb", "notify_url",
       "notify_url has an invalid port; expected 1-65535, found \"https://example.com:65536/cb\""},
      {"1", "https://example.com:https/cb", "notify_url",
       "notify_url has an invalid port; expected 1-65535, found \"https://example.com:https/cb\""},
      {"1", "https://example.com:1:2/cb", "notify_url",
       "notify_url has an invalid port; expected 1-65535, found \"https://example.com:1:2/cb\""},
      {"1", "https://exa%6dple.com/cb", "notify_url",
       "notify_url has an invalid host; expected a DNS name or IP address, found \"https://exa%6dple.com/cb\""},
      {"1", "https://example..com/cb", "notify_url",
       "notify_url has an invalid host; expected a DNS name or IP address, found \"https://example..com/cb\""},
      {"1", "https://-example.com/cb", "notify_url",
       "notify_url has an invalid host; expected a DNS name or IP address, found \"https://-example.com/cb\""},
      {"1", "https://[::1/cb", "notify_url",
       "notify_url has an invalid IPv6 host; expected https://[2001:db8::1]/path, found \"https://[::1/cb\""},
      {"1", "https://[zz]/cb", "notify_url",
       "notify_url has an invalid IPv6 host; expected https://[2001:db8::1]/path, found \"https://[zz]/cb\""},
      {"1", "https://[::1]x/cb", "notify_url",
       "notify_url has garbage after the IPv6 host, found \"https://[::1]x/cb\""},
      {"1", "https://[::1]:/cb", "notify_url", "notify_url has an empty port after ':', found \"https://[::1]:/cb\""},
      // mchid is checked first: one message per failure.
      {"x", "http://bad", "mchid", "mchid must be 1-20 ASCII digits, found \"x\""},
  };
  for (const auto& row : rows) {
    CAPTURE(row.mchid, row.url);
    const auto error = validate_desired(row.mchid, row.url);
    REQUIRE(error.has_value());
    CHECK(error->field == row.field);
    CHECK_THAT(error->message, Equals(row.message));
  }
}

TEST_CASE("a 10 MB value is never echoed back in full", "[desired][validation]") {
  const std::string huge_url = "https://example.com/" + std::string(10 * 1024 * 1024, 'x');
  const auto url_error = validate_notify_url(huge_url);
  REQUIRE(url_error.has_value());
  CHECK(url_error->message.size() < 200);
  CHECK_THAT(url_error->message, Catch::Matchers::EndsWith("…(10485780 bytes)\""));

  const auto mchid_error = validate_mchid(std::string(10 * 1024 * 1024, '1'));
  REQUIRE(mchid_error.has_value());
  CHECK(mchid_error->message.size() < 200);

  // Cut on a UTF-8 boundary: no half character at the end of the excerpt.
  std::string chinese;
  for (int i = 0; i < 100; ++i) chinese += "中";
  const auto cut = validate_mchid(chinese);
  REQUIRE(cut.has_value());
  CHECK(cut->message ==
        "mchid must be 1-20 ASCII digits, found 300 bytes: \"" + std::string(chinese, 0, 63) + "…(300 bytes)\"");
}
