#include "sandbox/faults.h"

#include <array>
#include <cstdio>
#include <ctime>
#include <utility>

namespace callbackd::sandbox {

namespace {

struct NamedKind {
  std::string_view name;
  FaultKind kind;
};
constexpr std::array<NamedKind, 15> kKinds{{
    {"none", FaultKind::none},
    {"error", FaultKind::error},
    {"delay", FaultKind::delay},
    {"timeout", FaultKind::timeout},
    {"reset", FaultKind::reset},
    {"malformed_body", FaultKind::malformed_body},
    {"bad_signature", FaultKind::bad_signature},
    {"unknown_serial", FaultKind::unknown_serial},
    {"clock_skew", FaultKind::clock_skew},
    {"update_time_skew", FaultKind::update_time_skew},
    {"stale_close", FaultKind::stale_close},
    {"oversized_body", FaultKind::oversized_body},
    {"malformed_http", FaultKind::malformed_http},
    {"proxy_answer", FaultKind::proxy_answer},
    {"odd_update_time", FaultKind::odd_update_time},
}};

struct CodeEntry {
  std::string_view code;
  ErrorCodeInfo info;
};
// The seed's table (favor-callbacks-api.md) with its descriptions, plus the common codes.
constexpr std::array<CodeEntry, 11> kCodes{{
    {"PARAM_ERROR", {400, "回调 url 不能为空"}},
    {"MCH_NOT_EXISTS", {400, "商户号不合法"}},
    {"INVALID_REQUEST", {400, "非法的商户号"}},
    {"APPID_MCHID_NOT_MATCH", {400, "商户号与 appid 不匹配"}},
    {"USER_ACCOUNT_ABNORMAL", {403, "用户非法"}},
    {"NOT_ENOUGH", {403, "批次预算不足"}},
    {"REQUEST_BLOCKED", {403, "调用商户无权限"}},
    {"RESOURCE_NOT_EXISTS", {404, "批次不存在"}},
    {"FREQUENCY_LIMIT_EXCEED", {429, "接口限频"}},
    {"SIGN_ERROR", {401, "错误的签名，验签失败"}},
    {"SYSTEM_ERROR", {500, "系统错误"}},
}};

FaultAction resolve(const FaultRule& rule) {
  FaultAction a;
  a.kind = rule.kind;
  a.delay = rule.delay;
  a.skew = rule.skew;
  a.size_bytes = rule.size_bytes;
  a.empty_body = rule.empty_body;
  a.update_time = rule.update_time;
  if (rule.kind == FaultKind::proxy_answer) a.status = rule.status != 0 ? rule.status : 403;
  if (rule.kind == FaultKind::error) {
    a.code = rule.code;
    auto info = error_code_info(rule.code);
    a.status = rule.status != 0 ? rule.status : (info ? info->status : 500);
    a.message = info ? std::string(info->message) : "injected fault";
    if (a.status == 503 && !info) a.message = "服务不可用";
    if (rule.message) a.message = *rule.message;
  }
  return a;
}

}  // namespace

std::string_view to_string(FaultKind kind) {
  for (const auto& k : kKinds)
    if (k.kind == kind) return k.name;
  return "none";
}

std::optional<FaultKind> fault_kind_from_string(std::string_view name) {
  for (const auto& k : kKinds)
    if (k.name == name) return k.kind;
  return std::nullopt;
}

std::optional<ErrorCodeInfo> error_code_info(std::string_view code) {
  for (const auto& c : kCodes)
    if (c.code == code) return c.info;
  return std::nullopt;
}

std::string proxy_page(int status, bool empty) {
  if (empty) return "";
  const auto reason = [&]() -> std::string_view {
    switch (status) {
      case 400:
        return "Bad Request";
      case 401:
        return "Unauthorized";
      case 403:
        return "Forbidden";
      case 404:
        return "Not Found";
      case 405:
        return "Not Allowed";
      case 413:
        return "Request Entity Too Large";
      case 429:
        return "Too Many Requests";
      case 500:
        return "Internal Server Error";
      case 502:
        return "Bad Gateway";
      case 503:
        return "Service Temporarily Unavailable";
      case 504:
        return "Gateway Time-out";
      default:
        return "Error";
    }
  }();
  const std::string title = std::to_string(status) + " " + std::string(reason);
  return "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
         "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
}

std::string beijing_update_time(std::chrono::system_clock::time_point t, bool prose_form) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000 + 8 * 3600);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d%c%03d+08:00", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, prose_form ? ':' : '.', static_cast<int>(ms % 1000));
  return buf;
}

double unit_random(std::uint64_t seed, std::uint64_t index) {
  // splitmix64 over seed and index mixed: cheap, well distributed, and the same everywhere
  // (std:: distributions are not specified bit for bit across standard libraries).
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

FaultAction choose_fault(const FaultPlan& plan, std::string_view sub_merchant, std::uint64_t request_index) {
  if (auto it = plan.by_sub_merchant.find(sub_merchant); it != plan.by_sub_merchant.end()) return resolve(it->second);
  // One roll per request; rules take consecutive slices of [0, 1), so their probabilities are
  // exact and independent of each other's order (as long as they sum to at most 1).
  const double roll = unit_random(plan.seed, request_index);
  double edge = 0;
  for (const auto& rule : plan.random) {
    edge += rule.probability;
    if (roll < edge) return resolve(rule);
  }
  return {};
}

std::string_view to_string(CertificateFault fault) {
  switch (fault) {
    case CertificateFault::bad_tag:
      return "bad_tag";
    case CertificateFault::unlisted_signer:
      return "unlisted_signer";
  }
  return "bad_tag";
}

std::optional<CertificateFault> certificate_fault_from_string(std::string_view name) {
  for (auto f : {CertificateFault::bad_tag, CertificateFault::unlisted_signer})
    if (to_string(f) == name) return f;
  return std::nullopt;
}

}  // namespace callbackd::sandbox
