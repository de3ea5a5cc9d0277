// allowed_notify_hosts: one canonical form for hosts and list entries, and the tricks that make
// a URL look as if it went somewhere else (core/desired/notify_host.h), table-driven.
#include <catch2/catch.hpp>

#include "core/desired/notify_host.h"

using namespace callbackd::desired;

TEST_CASE("canonical_host: case, trailing dot, percent-encoding and IDNA give one form", "[notify_host]") {
  const struct {
    const char* host;
    const char* canonical;  // nullptr: not a host
  } rows[] = {
      {"hooks.example.com", "hooks.example.com"},
      {"HOOKS.Example.COM", "hooks.example.com"},
      {"hooks.example.com.", "hooks.example.com"},  // the fully qualified form is the same name
      {"hooks%2Eexample%2Ecom", "hooks.example.com"},
      {"%68ooks.example.com", "hooks.example.com"},
      {"bücher.example", "xn--bcher-kva.example"},
      {"BÜCHER.example", "xn--bcher-kva.example"},         // UTS #46 maps case too
      {"b%C3%BCcher.example", "xn--bcher-kva.example"},    // percent-encoded UTF-8
      {"XN--BCHER-KVA.example", "xn--bcher-kva.example"},  // punycode as written
      {"hooks\xE3\x80\x82"
       "example.com",
       "hooks.example.com"},  // U+3002 ideographic full stop
      {"127.0.0.1", "127.0.0.1"},
      {"[2001:DB8::1]", "[2001:db8::1]"},
      {"under_score.example", "under_score.example"},
      {"", nullptr},
      {".", nullptr},
      {"hooks..example.com", nullptr},
      {"hooks.example.com..", nullptr},
      {"hooks.example.com%2F.evil.com", nullptr},  // a decoded '/' is not part of a name
      {"evil.com%40hooks.example.com", nullptr},   // nor a decoded '@'
      {"hooks.example.com%", nullptr},
      {"hooks.example.com%G1", nullptr},
      {"hooks example.com", nullptr},
      {"hooks.example.com:443", nullptr},
      {"[2001:db8::1", nullptr},
      {"[hooks.example.com]", nullptr},
  };
  for (const auto& row : rows) {
    CAPTURE(row.host);
    const auto got = canonical_host(row.host);
    if (row.canonical) {
      REQUIRE(got);
      CHECK(*got == row.canonical);
    } else {
      CHECK_FALSE(got);
    }
  }
}

TEST_CASE("notify_url_host reads the host a request would really go to", "[notify_host]") {
  const struct {
    const char* url;
    const char* host;  // nullptr: no readable host
  } rows[] = {
      {"https://hooks.example.com/cb", "hooks.example.com"},
      {"https://hooks.example.com", "hooks.example.com"},
      {"https://hooks.example.com:8443/cb", "hooks.example.com"},
      {"HTTPS://HOOKS.EXAMPLE.COM./cb", "hooks.example.com"},
      {"https://hooks.example.com?x=1", "hooks.example.com"},
      // user information: everything up to the LAST '@' is not the host
      {"https://hooks.example.com@evil.com/", "evil.com"},
      {"https://hooks.example.com:443@evil.com/", "evil.com"},
      {"https://a@hooks.example.com@evil.com/", "evil.com"},
      // the authority ends at the first '/', '?', '#' or '\'
      {"https://evil.com/@hooks.example.com", "evil.com"},
      {"https://evil.com?@hooks.example.com", "evil.com"},
      {"https://evil.com#@hooks.example.com", "evil.com"},
      {"https://evil.com\\@hooks.example.com", "evil.com"},
      {"https://hooks.example.com.evil.com/", "hooks.example.com.evil.com"},
      {"https://hooks%2Eexample.com/", "hooks.example.com"},
      {"https://xn--bcher-kva.example/", "xn--bcher-kva.example"},
      {"https://[2001:db8::1]:8443/cb", "[2001:db8::1]"},
      {"https://hooks.example.com:x@/", nullptr},
      {"https://hooks.example.com:44a3/", nullptr},
      {"https:///cb", nullptr},
      {"hooks.example.com/cb", nullptr},
      {"", nullptr},
  };
  for (const auto& row : rows) {
    CAPTURE(row.url);
    const auto got = notify_url_host(row.url);
    if (row.host) {
      REQUIRE(got);
      CHECK(*got == row.host);
    } else {
      CHECK_FALSE(got);
    }
  }
}

TEST_CASE("host_allowed: exact names and leading-wildcard suffixes", "[notify_host]") {
  const auto allowed = parse_allowed_hosts({"hooks.example.com", "*.example.org", "Bücher.example", "10.0.0.5"});
  REQUIRE(allowed.problems.empty());
  const struct {
    const char* host;
    bool allowed;
  } rows[] = {
      {"hooks.example.com", true},
      {"api.hooks.example.com", false},  // an exact entry allows only itself
      {"example.com", false},
      {"evilhooks.example.com", false},
      {"a.example.org", true},
      {"a.b.example.org", true},  // a suffix at any depth
      {"example.org", false},     // the apex is an entry of its own
      {"evilexample.org", false},
      {"example.org.evil.com", false},
      {"xn--bcher-kva.example", true},
      {"10.0.0.5", true},
      {"10.0.0.6", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.host);
    CHECK(host_allowed(row.host, allowed) == row.allowed);
  }
  // A wildcard never matches an IP literal, even when its digits line up.
  CHECK_FALSE(host_allowed("127.0.0.1", parse_allowed_hosts({"*.0.0.1"})));
  CHECK_FALSE(host_allowed("[::1]", parse_allowed_hosts({"*.1"})));
}

TEST_CASE("parse_allowed_hosts names every entry that is not a host and then allows nothing", "[notify_host]") {
  for (const char* bad : {"https://hooks.example.com", "hooks.example.com/cb", "hooks.example.com:443", "*", "*.",
                          "hooks.*.example.com", "**.example.com", "*example.com", "", "*.127.0.0.1"}) {
    CAPTURE(bad);
    const auto allowed = parse_allowed_hosts({"hooks.example.com", bad});
    REQUIRE(allowed.problems.size() == 1);
    CHECK(allowed.problems.front().find("is not a host name") != std::string::npos);
    CHECK_FALSE(host_allowed("hooks.example.com", allowed));  // fail closed
  }
}

TEST_CASE("check_notify_host: NULL allows any host, a refusal names the host and the list", "[notify_host]") {
  CHECK_FALSE(check_notify_host("https://anything.example/", std::nullopt));
  const auto allowed = parse_allowed_hosts({"hooks.example.com"});
  CHECK_FALSE(check_notify_host("https://HOOKS.example.com./cb", allowed));

  const auto refused = check_notify_host("https://hooks.example.com@evil.com/", allowed);
  REQUIRE(refused);
  CHECK(refused->code == "NOTIFY_HOST_NOT_ALLOWED");
  CHECK(refused->field == "notify_url");
  CHECK(refused->message ==
        "notify_url host \"evil.com\" is not in tenants.allowed_notify_hosts {hooks.example.com}; add it to the list "
        "or correct the URL");

  const auto empty = check_notify_host("https://hooks.example.com/", parse_allowed_hosts({}));
  REQUIRE(empty);
  CHECK(empty->message.find("allowed_notify_hosts {}") != std::string::npos);

  const auto broken = check_notify_host("https://hooks.example.com/", parse_allowed_hosts({"https://x.example"}));
  REQUIRE(broken);
  CHECK(broken->message.find("\"https://x.example\" is not a host name") != std::string::npos);
  CHECK(broken->message.find("until the list is fixed") != std::string::npos);
}
