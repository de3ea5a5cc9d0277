// The read call (core/wechatpay/live_read.h): its signed target, and its answers classified.
#include <catch2/catch.hpp>

#include "core/wechatpay/live_read.h"

using namespace callbackd;
using namespace callbackd::wechatpay;

namespace {

ReadOutcome read_status(int status, const std::string& body, bool verified = true) {
  AttemptObservation obs;
  obs.http_status = status;
  obs.body = body;
  obs.headers.request_id = "REQ-1";
  if (status >= 200 && status < 300)
    obs.verification =
        verified
            ? Result<VerifiedResponse, VerifyError>(VerifiedResponse{"PUB_KEY_ID_1"})
            : Result<VerifiedResponse, VerifyError>(VerifyError{VerifyError::Kind::bad_signature, "does not verify"});
  return classify_read(obs, "1711010001");
}

}  // namespace

TEST_CASE("the read's signed target carries the query string, the mchid encoded", "[wechatpay][live]") {
  CHECK(favor_callbacks_read_target("1711010001") == "/v3/marketing/favor/callbacks?mchid=1711010001");
  CHECK(favor_callbacks_read_target("17 1&x=1") == "/v3/marketing/favor/callbacks?mchid=17%201%26x%3D1");
}

TEST_CASE("a verified answer is the live value; nothing set reads as empty", "[wechatpay][live]") {
  auto r = read_status(200, R"({"mchid":"1711010001","notify_url":"https://a.example/x"})");
  REQUIRE(r.answered());
  CHECK(*r.live_notify_url == "https://a.example/x");
  CHECK(r.outcome.request_id == "REQ-1");
  // Both forms of "nothing set".
  r = read_status(200, R"({"mchid":"1711010001","notify_url":""})");
  REQUIRE(r.answered());
  CHECK(r.live_notify_url->empty());
  r = read_status(404, R"({"code":"RESOURCE_NOT_EXISTS","message":"未设置"})");
  REQUIRE(r.answered());
  CHECK(r.live_notify_url->empty());
  CHECK(r.outcome.http_status == 404);
}

TEST_CASE("a read fails as a POST would, and an unreadable verified body is transient", "[wechatpay][live]") {
  // A proxy's 404 page is not WeChat Pay's "nothing set".
  auto r = read_status(404, "<html>Not Found</html>");
  CHECK_FALSE(r.answered());
  CHECK(r.outcome.kind == OutcomeKind::transient);
  r = read_status(429, R"({"code":"FREQUENCY_LIMIT_EXCEED","message":"x"})");
  CHECK(r.outcome.kind == OutcomeKind::rate_limited);
  r = read_status(401, R"({"code":"SIGN_ERROR","message":"x"})");
  CHECK(r.outcome.kind == OutcomeKind::tenant_error);
  r = read_status(500, R"({"code":"SYSTEM_ERROR","message":"x"})");
  CHECK(r.outcome.kind == OutcomeKind::transient);
  r = read_status(200, R"({"mchid":"1711010001","notify_url":"https://a.example/x"})", false);
  CHECK_FALSE(r.answered());
  CHECK(r.outcome.kind == OutcomeKind::tenant_error);
  for (const char* body : {"<html/>", R"({"notify_url":7})", R"({"mchid":"9999","notify_url":"https://a.example"})"}) {
    CAPTURE(body);
    r = read_status(200, body);
    CHECK_FALSE(r.answered());
    CHECK(r.outcome.kind == OutcomeKind::transient);
    CHECK(r.outcome.error_code == "READ_BODY_INVALID");
  }
}
