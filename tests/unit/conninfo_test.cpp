// libpq connection strings in messages and with callbackd's defaults (pure: no server).
#include <catch2/catch.hpp>

#include <string>

#include "core/error.h"
#include "pg/conninfo.h"

using callbackd::pg::conninfo_with_defaults;
using callbackd::pg::describe_conninfo;
using namespace std::chrono_literals;

TEST_CASE("describe_conninfo names the server and never the password", "[conninfo]") {
  struct Case {
    std::string conninfo;
    std::string expected;
  };
  const Case cases[] = {
      {"host=db.example.com port=5433 dbname=callbackd user=cb password=s3cret",
       "host=db.example.com port=5433 dbname=callbackd user=cb"},
      {"postgresql://cb:s3cret@db.example.com:5433/callbackd?sslmode=verify-full",
       "host=db.example.com port=5433 dbname=callbackd user=cb"},
      {"postgresql:///callbackd?host=/run/postgresql", "host=/run/postgresql dbname=callbackd"},
      {"dbname=callbackd sslpassword=s3cret", "dbname=callbackd"},
      {"", "(libpq defaults)"},
      {"host=db password='unterminated", "(unparsable conninfo)"},
  };
  for (const auto& c : cases) {
    INFO(c.conninfo);
    CHECK(describe_conninfo(c.conninfo) == c.expected);
  }
}

TEST_CASE("conninfo_with_defaults adds a deadline and an application name unless set", "[conninfo]") {
  SECTION("added to key=value and to URIs, rewritten as key=value") {
    CHECK(conninfo_with_defaults("host=/tmp dbname=x", 10s, "callbackd migrate") ==
          "dbname='x' host='/tmp' connect_timeout=10 application_name='callbackd migrate'");
    CHECK(conninfo_with_defaults("postgresql://u:p%27w@h/d", 10s, "callbackd") ==
          "user='u' password='p\\'w' dbname='d' host='h' connect_timeout=10 application_name='callbackd'");
  }
  SECTION("the writer's own values win") {
    CHECK(conninfo_with_defaults("dbname=x connect_timeout=3 application_name=ops", 10s, "callbackd") ==
          "connect_timeout='3' dbname='x' application_name='ops'");
  }
  SECTION("the deadline is rounded up to whole seconds, at least libpq's minimum of 2") {
    CHECK_THAT(conninfo_with_defaults("dbname=x", 2500ms, "a"), Catch::Contains("connect_timeout=3 "));
    CHECK_THAT(conninfo_with_defaults("dbname=x", 100ms, "a"), Catch::Contains("connect_timeout=2 "));
  }
  SECTION("the result parses back to the same server") {
    const std::string tricky = R"(host='/tmp/a b' dbname='it\'s' user=o\'neil)";
    CHECK(describe_conninfo(conninfo_with_defaults(tricky, 10s, "callbackd")) == describe_conninfo(tricky));
  }
  SECTION("an unparsable conninfo is a start-up error that does not repeat it") {
    try {
      conninfo_with_defaults("host=db password='s3cret", 10s, "callbackd");
      FAIL("accepted an unparsable conninfo");
    } catch (const callbackd::StartupError& e) {
      CHECK_THAT(e.what(), Catch::Contains("database.url") && !Catch::Contains("s3cret"));
    }
  }
}
