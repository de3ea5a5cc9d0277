// Fault selection: reproducible from the seed, exact per sub-merchant, proportional at random.
#include <catch2/catch.hpp>

#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/update_time.h"
#include "sandbox/faults.h"

using namespace callbackd::sandbox;

namespace {
FaultRule error_rule(std::optional<std::string> message) {
  FaultRule rule;
  rule.kind = FaultKind::error;
  rule.code = "PARAM_ERROR";
  rule.message = std::move(message);
  return rule;
}
}  // namespace

TEST_CASE("every error code of the seed table has its documented status", "[sandbox][faults]") {
  const std::pair<const char*, int> table[] = {
      {"PARAM_ERROR", 400},
      {"MCH_NOT_EXISTS", 400},
      {"INVALID_REQUEST", 400},
      {"APPID_MCHID_NOT_MATCH", 400},
      {"USER_ACCOUNT_ABNORMAL", 403},
      {"NOT_ENOUGH", 403},
      {"REQUEST_BLOCKED", 403},
      {"RESOURCE_NOT_EXISTS", 404},
      {"FREQUENCY_LIMIT_EXCEED", 429},
      {"SIGN_ERROR", 401},
      {"SYSTEM_ERROR", 500},
  };
  for (const auto& [code, status] : table) {
    INFO(code);
    auto info = error_code_info(code);
    REQUIRE(info);
    CHECK(info->status == status);
    CHECK_FALSE(info->message.empty());
  }
  CHECK_FALSE(error_code_info("NO_SUCH_CODE"));
}

TEST_CASE("a sub-merchant fault applies to every request for it", "[sandbox][faults]") {
  FaultPlan plan;
  plan.by_sub_merchant["1900000101"] = FaultRule{FaultKind::error, 1.0, "NOT_ENOUGH", 0, {}, {}, 0, {}};
  plan.random.push_back(FaultRule{FaultKind::reset, 1.0, "", 0, {}, {}, 0, {}});
  for (std::uint64_t i = 0; i < 10; ++i) {
    const auto a = choose_fault(plan, "1900000101", i);
    CHECK(a.kind == FaultKind::error);
    CHECK(a.code == "NOT_ENOUGH");
    CHECK(a.status == 403);
  }
  CHECK(choose_fault(plan, "1900000102", 0).kind == FaultKind::reset);
}

TEST_CASE("random faults are reproducible from the seed and proportional", "[sandbox][faults]") {
  FaultPlan plan;
  plan.seed = 42;
  plan.random.push_back(FaultRule{FaultKind::error, 0.10, "SYSTEM_ERROR", 0, {}, {}, 0, {}});
  plan.random.push_back(FaultRule{FaultKind::error, 0.05, "SYSTEM_ERROR", 503, {}, {}, 0, {}});
  plan.random.push_back(FaultRule{FaultKind::timeout, 0.05, "", 0, {}, {}, 0, {}});
  int s500 = 0, s503 = 0, timeouts = 0, none = 0;
  for (std::uint64_t i = 0; i < 100'000; ++i) {
    const auto a = choose_fault(plan, "x", i);
    CHECK(a.kind == choose_fault(plan, "x", i).kind);  // same seed and index, same answer
    if (a.kind == FaultKind::error && a.status == 500)
      ++s500;
    else if (a.kind == FaultKind::error && a.status == 503)
      ++s503;
    else if (a.kind == FaultKind::timeout)
      ++timeouts;
    else
      ++none;
  }
  CHECK(s500 == Approx(10'000).epsilon(0.05));
  CHECK(s503 == Approx(5'000).epsilon(0.08));
  CHECK(timeouts == Approx(5'000).epsilon(0.08));
  CHECK(none == Approx(80'000).epsilon(0.02));

  FaultPlan other = plan;
  other.seed = 43;
  int differ = 0;
  for (std::uint64_t i = 0; i < 1000; ++i)
    differ += choose_fault(plan, "x", i).kind != choose_fault(other, "x", i).kind;
  CHECK(differ > 0);
}

TEST_CASE("unit_random stays within 0 inclusive and 1 exclusive", "[sandbox][faults]") {
  for (std::uint64_t i = 0; i < 10'000; ++i) {
    const double u = unit_random(7, i);
    CHECK(u >= 0.0);
    CHECK(u < 1.0);
  }
}

TEST_CASE("fault kinds round-trip through their names", "[sandbox][faults]") {
  for (const char* name :
       {"none", "error", "delay", "timeout", "reset", "malformed_body", "bad_signature", "unknown_serial", "clock_skew",
        "stale_close", "oversized_body", "malformed_http", "proxy_answer", "odd_update_time"}) {
    auto k = fault_kind_from_string(name);
    REQUIRE(k);
    CHECK(to_string(*k) == name);
  }
  CHECK_FALSE(fault_kind_from_string("explode"));
}

TEST_CASE("an error fault may answer any message, for tests of what the daemon does with it", "[sandbox][faults]") {
  FaultPlan plan;
  const std::string forged = R"(x" event=forged tenant=evil)";
  plan.by_sub_merchant["1900000101"] = error_rule(forged);
  const auto a = choose_fault(plan, "1900000101", 0);
  CHECK(a.status == 400);
  CHECK(a.message == forged);
  // Without one, the code's documented message.
  plan.by_sub_merchant["1900000101"] = error_rule(std::nullopt);
  CHECK(choose_fault(plan, "1900000101", 0).message == error_code_info("PARAM_ERROR")->message);
}

TEST_CASE("a proxy's answer: its status, an nginx page or nothing, never WeChat Pay's error body",
          "[sandbox][faults]") {
  FaultPlan plan;
  FaultRule page_rule;
  page_rule.kind = FaultKind::proxy_answer;
  plan.by_sub_merchant["1"] = page_rule;
  FaultRule empty;
  empty.kind = FaultKind::proxy_answer;
  empty.status = 413;
  empty.empty_body = true;
  plan.by_sub_merchant["2"] = empty;
  const FaultAction html = choose_fault(plan, "1", 0);
  CHECK(html.kind == FaultKind::proxy_answer);
  CHECK(html.status == 403);  // the default
  CHECK_FALSE(html.empty_body);
  const std::string page = proxy_page(403, false);
  CHECK(page.find("<title>403 Forbidden</title>") != std::string::npos);
  CHECK_FALSE(callbackd::wechatpay::parse_error_body(page).wechatpay_format);
  const FaultAction bare = choose_fault(plan, "2", 0);
  CHECK(bare.status == 413);
  CHECK(bare.empty_body);
  CHECK(proxy_page(413, true).empty());
}

TEST_CASE("update_time as the sandbox writes it: the seed's example form, or its prose form", "[sandbox][faults]") {
  const auto t = std::chrono::system_clock::time_point{} + std::chrono::milliseconds{1'432'099'775'120};
  CHECK(beijing_update_time(t) == "2015-05-20T13:29:35.120+08:00");
  CHECK(beijing_update_time(t, true) == "2015-05-20T13:29:35:120+08:00");
  CHECK_FALSE(callbackd::wechatpay::parse_rfc3339(beijing_update_time(t, true)));
  CHECK(callbackd::wechatpay::parse_update_time(beijing_update_time(t, true)) ==
        callbackd::wechatpay::parse_rfc3339(beijing_update_time(t)));
}
