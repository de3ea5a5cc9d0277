// Outcome classification: every code of the seed's table, every status of wechatpay-v3.md
// section 3, transport failures and 2xx verification/body failures, each with its outcome
// name, error code and message.
#include <catch2/catch.hpp>

#include "core/wechatpay/outcome.h"

using namespace callbackd;
using namespace callbackd::wechatpay;
using Catch::Matchers::Equals;

namespace {

const char* const kApplied =
    R"({"update_time":"2015-05-20T13:29:35.120+08:00","notify_url":"https://pay.weixin.qq.com"})";

std::string error_body(const std::string& code, const std::string& message) {
  return R"({"code":")" + code + R"(","message":")" + message + R"(","detail":{"field":"/notify_url"}})";
}

struct Row {
  std::string name;
  int status;
  std::string body;
  std::string expected_outcome;
  std::string expected_code;
  std::string expected_message;
};

Outcome classify_status(int status, const std::string& body, std::optional<std::string> retry_after = std::nullopt) {
  AttemptObservation obs;
  obs.http_status = status;
  obs.body = body;
  obs.headers.request_id = "REQ-1";
  obs.headers.retry_after = std::move(retry_after);
  if (status >= 200 && status < 300)
    obs.verification = Result<VerifiedResponse, VerifyError>(VerifiedResponse{"PUB_KEY_ID_1"});
  return classify_attempt(obs);
}

}  // namespace

TEST_CASE("outcome names are stable", "[wechatpay][outcome]") {
  CHECK(outcome_name(OutcomeKind::applied) == "applied");
  CHECK(outcome_name(OutcomeKind::rejected) == "rejected");
  CHECK(outcome_name(OutcomeKind::tenant_error) == "tenant_error");
  CHECK(outcome_name(OutcomeKind::rate_limited) == "rate_limited");
  CHECK(outcome_name(OutcomeKind::transient) == "transient");
  CHECK(outcome_name(OutcomeKind::invalid) == "invalid");
}

TEST_CASE("every error status and code has a defined outcome", "[wechatpay][outcome]") {
  const Row rows[] = {
      // The seed's table: per-row refusals.
      {"400 PARAM_ERROR", 400, error_body("PARAM_ERROR", "回调 url 不能为空"), "rejected", "PARAM_ERROR",
       "回调 url 不能为空"},
      {"400 MCH_NOT_EXISTS", 400, error_body("MCH_NOT_EXISTS", "商户号不合法"), "rejected", "MCH_NOT_EXISTS",
       "商户号不合法"},
      {"400 INVALID_REQUEST", 400, error_body("INVALID_REQUEST", "非法的商户号"), "rejected", "INVALID_REQUEST",
       "非法的商户号"},
      {"400 APPID_MCHID_NOT_MATCH", 400, error_body("APPID_MCHID_NOT_MATCH", "商户号与 appid 不匹配"), "rejected",
       "APPID_MCHID_NOT_MATCH", "商户号与 appid 不匹配"},
      {"403 USER_ACCOUNT_ABNORMAL", 403, error_body("USER_ACCOUNT_ABNORMAL", "用户非法"), "rejected",
       "USER_ACCOUNT_ABNORMAL", "用户非法"},
      {"403 NOT_ENOUGH", 403, error_body("NOT_ENOUGH", "批次预算不足"), "rejected", "NOT_ENOUGH", "批次预算不足"},
      {"403 REQUEST_BLOCKED", 403, error_body("REQUEST_BLOCKED", "调用商户无权限"), "rejected", "REQUEST_BLOCKED",
       "调用商户无权限"},
      {"404 RESOURCE_NOT_EXISTS", 404, error_body("RESOURCE_NOT_EXISTS", "批次不存在"), "rejected",
       "RESOURCE_NOT_EXISTS", "批次不存在"},
      {"429 FREQUENCY_LIMIT_EXCEED", 429, error_body("FREQUENCY_LIMIT_EXCEED", "接口限频"), "rate_limited",
       "FREQUENCY_LIMIT_EXCEED", "接口限频"},
      // wechatpay-v3.md section 3: common statuses.
      {"401 SIGN_ERROR", 401, error_body("SIGN_ERROR", "错误的签名，验签失败"), "tenant_error", "SIGN_ERROR",
       "错误的签名，验签失败"},
      {"401 SIGN_ERROR serial", 401, error_body("SIGN_ERROR", "商户证书序列号有误。"), "tenant_error", "SIGN_ERROR",
       "商户证书序列号有误。"},
      {"403 NO_AUTH", 403, error_body("NO_AUTH", "商户无权限"), "tenant_error", "NO_AUTH", "商户无权限"},
      {"429 FREQUENCY_LIMITED (sibling spelling)", 429, error_body("FREQUENCY_LIMITED", "频率超限"), "rate_limited",
       "FREQUENCY_LIMITED", "频率超限"},
      {"429 any code", 429, error_body("SOMETHING_NEW", "slow down"), "rate_limited", "SOMETHING_NEW", "slow down"},
      {"429 no body", 429, "", "rate_limited", "HTTP_429", "HTTP 429 without a WeChat Pay error body"},
      {"500 SYSTEM_ERROR", 500, error_body("SYSTEM_ERROR", "系统错误"), "transient", "SYSTEM_ERROR", "系统错误"},
      {"502 no body", 502, "<html>Bad Gateway</html>", "transient", "HTTP_502",
       "HTTP 502 without a WeChat Pay error body: \"<html>Bad Gateway</html>\""},
      {"503 no body", 503, "", "transient", "HTTP_503", "HTTP 503 without a WeChat Pay error body"},
      {"504", 504, "", "transient", "HTTP_504", "HTTP 504 without a WeChat Pay error body"},
      {"500 with a row code", 500, error_body("PARAM_ERROR", "x"), "transient", "PARAM_ERROR", "x"},
      // Unknown codes fall back by status class.
      {"400 unknown code", 400, error_body("BRAND_NEW", "new"), "rejected", "BRAND_NEW", "new"},
      {"403 unknown code", 403, error_body("BRAND_NEW", "new"), "rejected", "BRAND_NEW", "new"},
      // Only WeChat Pay's JSON error body is a verdict on the row or the tenant (outcome.h):
      // a proxy's or WAF's answer at any 4xx is transient.
      {"404 no body", 404, "", "transient", "HTTP_404", "HTTP 404 without a WeChat Pay error body"},
      {"403 a proxy's HTML page", 403, "<html><head><title>403 Forbidden</title></head></html>", "transient",
       "HTTP_403",
       "HTTP 403 without a WeChat Pay error body: \"<html><head><title>403 Forbidden</title></head></html>\""},
      {"400 a gateway's JSON without code", 400, R"({"message":"no Route matched"})", "transient", "HTTP_400",
       "HTTP 400 without a WeChat Pay error body: \"{\"message\":\"no Route matched\"}\""},
      {"403 a code but no message", 403, R"({"code":"REQUEST_BLOCKED"})", "transient", "HTTP_403",
       "HTTP 403 without a WeChat Pay error body: \"{\"code\":\"REQUEST_BLOCKED\"}\""},
      {"401 any code", 401, error_body("BRAND_NEW", "new"), "tenant_error", "BRAND_NEW", "new"},
      {"401 no body (a gateway's, not WeChat Pay's)", 401, "", "transient", "HTTP_401",
       "HTTP 401 without a WeChat Pay error body"},
      {"400 SIGN_ERROR", 400, error_body("SIGN_ERROR", "签名错误"), "tenant_error", "SIGN_ERROR", "签名错误"},
      {"403 FREQUENCY_LIMITED", 403, error_body("FREQUENCY_LIMITED", "频率超限"), "rate_limited", "FREQUENCY_LIMITED",
       "频率超限"},
      {"400 SYSTEM_ERROR", 400, error_body("SYSTEM_ERROR", "retry"), "transient", "SYSTEM_ERROR", "retry"},
      {"408", 408, "", "transient", "HTTP_408", "HTTP 408 without a WeChat Pay error body"},
      {"413 empty", 413, "", "transient", "HTTP_413", "HTTP 413 without a WeChat Pay error body"},
      {"413 WeChat Pay's body", 413, error_body("PARAM_ERROR", "请求体过大"), "rejected", "PARAM_ERROR", "请求体过大"},
      {"599", 599, "", "transient", "HTTP_599", "HTTP 599 without a WeChat Pay error body"},
      {"301 redirect", 301, "", "transient", "HTTP_301", "unexpected HTTP 301 (redirects are not followed)"},
      {"100", 100, "", "transient", "HTTP_100", "unexpected HTTP 100 (redirects are not followed)"},
      {"600 invalid", 600, "", "transient", "HTTP_600", "invalid HTTP status 600"},
      {"0 invalid", 0, "", "transient", "HTTP_0", "invalid HTTP status 0"},
      // Error bodies are parsed defensively.
      {"code not a string", 400, R"({"code":42,"message":["x"]})", "transient", "HTTP_400",
       "HTTP 400 without a WeChat Pay error body: \"{\"code\":42,\"message\":[\"x\"]}\""},
      {"body an array", 400, R"([1,2,3])", "transient", "HTTP_400",
       "HTTP 400 without a WeChat Pay error body: \"[1,2,3]\""},
      {"truncated JSON", 400, R"({"code":"PARAM_ERR)", "transient", "HTTP_400",
       "HTTP 400 without a WeChat Pay error body: \"{\"code\":\"PARAM_ERR\""},
      {"control chars in message", 400, R"({"code":"PARAM_ERROR","message":"a\nb\u0000c"})", "rejected", "PARAM_ERROR",
       "a?b?c"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    const Outcome out = classify_status(row.status, row.body);
    CHECK(outcome_name(out.kind) == row.expected_outcome);
    CHECK(out.error_code == row.expected_code);
    CHECK_THAT(out.error_message, Equals(row.expected_message));
    CHECK(out.request_id == std::optional<std::string>("REQ-1"));
    if (row.status >= 100 && row.status <= 599) {
      CHECK(out.http_status == std::optional<int>(row.status));
    } else {
      CHECK_FALSE(out.http_status.has_value());
    }
    CHECK_FALSE(out.applied.has_value());
  }
}

TEST_CASE("a long error message is bounded", "[wechatpay][outcome]") {
  const Outcome out = classify_status(400, error_body("PARAM_ERROR", std::string(10000, 'x')));
  CHECK(out.error_message == std::string(512, 'x') + "…(10000 bytes)");
  const Outcome code = classify_status(400, error_body(std::string(1000, 'C'), "m"));
  CHECK(code.error_code == std::string(64, 'C'));
}

TEST_CASE("Retry-After is honoured on 429 and 503, as delta-seconds only", "[wechatpay][outcome]") {
  CHECK(classify_status(429, "", "120").retry_after == std::optional<std::chrono::seconds>(120));
  CHECK(classify_status(503, "", "7").retry_after == std::optional<std::chrono::seconds>(7));
  CHECK(classify_status(429, "", "99999999").retry_after == std::optional<std::chrono::seconds>(3600));
  CHECK_FALSE(classify_status(429, "", "Wed, 21 Oct 2015 07:28:00 GMT").retry_after.has_value());
  CHECK_FALSE(classify_status(429, "", "-1").retry_after.has_value());
  CHECK_FALSE(classify_status(429, "", "").retry_after.has_value());
  CHECK_FALSE(classify_status(429, "").retry_after.has_value());
  // Not on a permanent refusal: the row waits for its desired state to change.
  CHECK_FALSE(classify_status(400, error_body("PARAM_ERROR", "x"), "5").retry_after.has_value());
}

TEST_CASE("a verified 200 with a good body is applied", "[wechatpay][outcome]") {
  const Outcome out = classify_status(200, kApplied);
  REQUIRE(out.kind == OutcomeKind::applied);
  CHECK(out.error_code.empty());
  CHECK(out.error_message.empty());
  CHECK(out.http_status == std::optional<int>(200));
  REQUIRE(out.applied.has_value());
  CHECK(out.applied->notify_url == "https://pay.weixin.qq.com");
  CHECK(out.applied->update_time_text == "2015-05-20T13:29:35.120+08:00");
  REQUIRE(out.applied->update_time.has_value());
  CHECK(format_rfc3339_utc(*out.applied->update_time) == "2015-05-20T05:29:35.120Z");
  CHECK(out.warning.empty());
  // The seed's own example echoes notify_url without a scheme; that is still applied.
  CHECK(classify_status(200, R"({"update_time":"2015-05-20T13:29:35.120+08:00","notify_url":"api.weixin.qq.com"})")
            .kind == OutcomeKind::applied);
}

TEST_CASE("a 2xx is never applied unless verified", "[wechatpay][outcome]") {
  struct VRow {
    VerifyError::Kind kind;
    const char* outcome;
    const char* code;
  };
  const VRow vrows[] = {
      {VerifyError::Kind::missing_header, "transient", "RESPONSE_SIGNATURE_MISSING_HEADER"},
      {VerifyError::Kind::bad_timestamp, "transient", "RESPONSE_SIGNATURE_BAD_TIMESTAMP"},
      {VerifyError::Kind::stale_timestamp, "transient", "RESPONSE_SIGNATURE_STALE_TIMESTAMP"},
      {VerifyError::Kind::bad_base64, "transient", "RESPONSE_SIGNATURE_BAD_BASE64"},
      {VerifyError::Kind::unknown_serial, "tenant_error", "RESPONSE_SIGNATURE_UNKNOWN_SERIAL"},
      {VerifyError::Kind::unsupported_signature_type, "tenant_error", "RESPONSE_SIGNATURE_UNSUPPORTED_SIGNATURE_TYPE"},
      {VerifyError::Kind::bad_signature, "tenant_error", "RESPONSE_SIGNATURE_BAD_SIGNATURE"},
  };
  for (const auto& row : vrows) {
    CAPTURE(row.code);
    AttemptObservation obs;
    obs.http_status = 200;
    obs.body = kApplied;
    obs.verification = Result<VerifiedResponse, VerifyError>(VerifyError{row.kind, "why it failed"});
    const Outcome out = classify_attempt(obs);
    CHECK(outcome_name(out.kind) == row.outcome);
    CHECK(out.error_code == row.code);
    CHECK(out.error_message == "why it failed");
    CHECK_FALSE(out.applied.has_value());
  }

  AttemptObservation unverified;
  unverified.http_status = 200;
  unverified.body = kApplied;
  const Outcome out = classify_attempt(unverified);
  CHECK(out.kind == OutcomeKind::transient);
  CHECK(out.error_code == "RESPONSE_NOT_VERIFIED");
  CHECK(out.error_message == "a 2xx response reached classification without signature verification");
}

TEST_CASE("a verified 2xx is applied whatever its body says, with a warning naming what was odd",
          "[wechatpay][outcome]") {
  struct ARow {
    std::string name;
    int status;
    std::string body;
    std::string sent_notify_url;
    std::string update_time_text;                // kept verbatim
    std::optional<std::string> update_time_utc;  // parsed; nullopt: NULL in the database
    std::string warning;
  };
  const std::string seed_time = "2015-05-20T13:29:35.120+08:00";
  const ARow rows[] = {
      {"the documented body", 200, kApplied, "https://pay.weixin.qq.com", seed_time, "2015-05-20T05:29:35.120Z", ""},
      // The seed's example echoes notify_url without its scheme: not odd.
      {"echo without scheme", 200, R"({"update_time":")" + seed_time + R"(","notify_url":"pay.weixin.qq.com"})",
       "https://pay.weixin.qq.com", seed_time, "2015-05-20T05:29:35.120Z", ""},
      // The seed's prose form "HH:mm:ss:sss": a form of update_time, parsed, not odd.
      {"update_time in the seed's prose form", 200,
       R"({"update_time":"2015-05-20T13:29:35:120+08:00","notify_url":"https://a"})", "https://a",
       "2015-05-20T13:29:35:120+08:00", "2015-05-20T05:29:35.120Z", ""},
      {"update_time unparseable", 200, R"({"update_time":"yesterday","notify_url":"https://a"})", "https://a",
       "yesterday", std::nullopt, "update_time is not RFC 3339: \"yesterday\""},
      {"update_time a number", 200, R"({"update_time":1,"notify_url":"https://a"})", "https://a", "", std::nullopt,
       "response body has no update_time string"},
      {"no update_time", 200, R"({"notify_url":"https://a"})", "https://a", "", std::nullopt,
       "response body has no update_time string"},
      {"no notify_url", 200, R"({"update_time":")" + seed_time + R"("})", "https://a", seed_time,
       "2015-05-20T05:29:35.120Z", "response body has no notify_url string"},
      {"not JSON", 200, "<html>", "https://a", "", std::nullopt, "response body is not a JSON object: \"<html>\""},
      {"cut off", 200, R"({"update_time":")" + seed_time + R"(","notify_url":)", "https://a", "", std::nullopt,
       "response body is not a JSON object: \"{\"update_time\":\"2015-05-20T13:29:35.120+08:00\",\"notify_url\":\""},
      {"array", 200, "[]", "https://a", "", std::nullopt, "response body is not a JSON object: \"[]\""},
      {"204 empty", 204, "", "https://a", "", std::nullopt, "response body is not a JSON object: \"\""},
      {"another notify_url echoed", 200, R"({"update_time":")" + seed_time + R"(","notify_url":"https://evil"})",
       "https://a", seed_time, "2015-05-20T05:29:35.120Z", "notify_url echoed as \"https://evil\", sent \"https://a\""},
      {"two odd things", 200, R"({"update_time":"soon","notify_url":"b"})", "https://a", "soon", std::nullopt,
       "update_time is not RFC 3339: \"soon\"; notify_url echoed as \"b\", sent \"https://a\""},
      {"nothing sent to compare with", 200, R"({"update_time":")" + seed_time + R"(","notify_url":"x"})", "", seed_time,
       "2015-05-20T05:29:35.120Z", ""},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    AttemptObservation obs;
    obs.http_status = row.status;
    obs.body = row.body;
    obs.sent_notify_url = row.sent_notify_url;
    obs.headers.request_id = "REQ-1";
    obs.verification = Result<VerifiedResponse, VerifyError>(VerifiedResponse{"PUB_KEY_ID_1"});
    const Outcome out = classify_attempt(obs);
    CHECK(outcome_name(out.kind) == "applied");
    CHECK(out.error_code.empty());
    CHECK(out.error_message.empty());
    CHECK_THAT(out.warning, Equals(row.warning));
    REQUIRE(out.applied.has_value());
    CHECK(out.applied->update_time_text == row.update_time_text);
    CHECK(out.applied->update_time.has_value() == row.update_time_utc.has_value());
    if (out.applied->update_time && row.update_time_utc)
      CHECK(format_rfc3339_utc(*out.applied->update_time) == *row.update_time_utc);
  }
}

TEST_CASE("who answered: WeChat Pay's error body or signature headers, or something else on the path",
          "[wechatpay][outcome]") {
  ResponseHeaders signed_headers;
  signed_headers.timestamp = "1700000000";
  signed_headers.nonce = "n";
  signed_headers.signature = "c2ln";
  signed_headers.serial = "PUB_KEY_ID_1";
  struct WRow {
    std::string name;
    int status;
    std::string body;
    bool signed_headers;
    std::optional<VerifyError::Kind> verify_failure;  // 2xx only; nullopt: verified
    Answerer expected;
  };
  const WRow rows[] = {
      {"403 proxy page", 403, "<html>403 Forbidden</html>", false, std::nullopt, Answerer::other},
      {"413 empty", 413, "", false, std::nullopt, Answerer::other},
      {"401 empty", 401, "", false, std::nullopt, Answerer::other},
      {"502 gateway page", 502, "<html>Bad Gateway</html>", false, std::nullopt, Answerer::other},
      {"429 empty", 429, "", false, std::nullopt, Answerer::other},
      {"302 redirect", 302, "", false, std::nullopt, Answerer::other},
      {"400 WeChat Pay's error body, unsigned", 400, error_body("PARAM_ERROR", "x"), false, std::nullopt,
       Answerer::wechatpay},
      {"500 WeChat Pay's error body", 500, error_body("SYSTEM_ERROR", "x"), false, std::nullopt, Answerer::wechatpay},
      {"413 empty but signed", 413, "", true, std::nullopt, Answerer::wechatpay},
      {"200 verified", 200, kApplied, true, std::nullopt, Answerer::wechatpay},
      {"200 without signature headers (a proxy's page)", 200, "<html>ok</html>", false,
       VerifyError::Kind::missing_header, Answerer::other},
      {"200 signed, stale", 200, kApplied, true, VerifyError::Kind::stale_timestamp, Answerer::wechatpay},
      {"200 signed, unknown key", 200, kApplied, true, VerifyError::Kind::unknown_serial, Answerer::wechatpay},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    AttemptObservation obs;
    obs.http_status = row.status;
    obs.body = row.body;
    if (row.signed_headers) obs.headers = signed_headers;
    if (row.status >= 200 && row.status < 300)
      obs.verification = row.verify_failure
                             ? Result<VerifiedResponse, VerifyError>(VerifyError{*row.verify_failure, "x"})
                             : Result<VerifiedResponse, VerifyError>(VerifiedResponse{"PUB_KEY_ID_1"});
    CHECK(answerer_name(classify_attempt(obs).answered_by) == answerer_name(row.expected));
  }
  AttemptObservation reset;
  reset.transport_failure = TransportFailure::connection_closed;
  CHECK(classify_attempt(reset).answered_by == Answerer::none);
}

TEST_CASE("transport failures are transient with a named code", "[wechatpay][outcome]") {
  struct TRow {
    TransportFailure failure;
    const char* message;
    const char* code;
    const char* expected;
  };
  const TRow rows[] = {
      {TransportFailure::resolve, "Host not found", "NETWORK_ERROR", "resolve: Host not found"},
      {TransportFailure::connect, "Connection refused", "NETWORK_ERROR", "connect: Connection refused"},
      {TransportFailure::tls, "certificate verify failed", "NETWORK_ERROR", "tls: certificate verify failed"},
      {TransportFailure::timeout, "", "TIMEOUT", "timeout"},
      {TransportFailure::connection_closed, "end of stream", "NETWORK_ERROR", "connection_closed: end of stream"},
      {TransportFailure::response_too_large, "", "NETWORK_ERROR", "response_too_large"},
      {TransportFailure::protocol, "bad status line\r\n", "NETWORK_ERROR", "protocol: bad status line??"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.expected);
    AttemptObservation obs;
    obs.transport_failure = row.failure;
    obs.transport_message = row.message;
    const Outcome out = classify_attempt(obs);
    CHECK(out.kind == OutcomeKind::transient);
    CHECK(out.error_code == row.code);
    CHECK(out.error_message == row.expected);
    CHECK_FALSE(out.http_status.has_value());
    CHECK_FALSE(out.applied.has_value());
    CHECK_FALSE(out.request_id.has_value());
  }
}
