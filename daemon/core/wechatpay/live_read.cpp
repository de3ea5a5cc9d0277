#include "core/wechatpay/live_read.h"

#include <nlohmann/json.hpp>

#include "core/wechatpay/encoding.h"

namespace callbackd::wechatpay {

namespace {

constexpr std::size_t kMaxBodyBytes = 64 * 1024;

bool unreserved(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

}  // namespace

std::string favor_callbacks_read_target(std::string_view sub_mchid) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string target(kFavorCallbacksPath);
  target += "?mchid=";
  for (const char ch : sub_mchid) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c)) {
      target += ch;
    } else {
      target += '%';
      target += kHex[c >> 4];
      target += kHex[c & 0xF];
    }
  }
  return target;
}

ReadOutcome classify_read(const AttemptObservation& observation, std::string_view sub_mchid) {
  ReadOutcome read;
  if (!observation.transport_failure && observation.http_status == 404) {
    const ApiError error = parse_error_body(observation.body);
    if (error.wechatpay_format && error.code == "RESOURCE_NOT_EXISTS") {
      read.outcome.kind = OutcomeKind::applied;
      read.outcome.http_status = 404;
      read.outcome.request_id = observation.headers.request_id;
      read.outcome.answered_by = Answerer::wechatpay;
      read.live_notify_url = "";
      return read;
    }
  }
  AttemptObservation as_read = observation;
  as_read.sent_notify_url = {};  // nothing was sent: no echo to compare
  read.outcome = classify_attempt(as_read);
  if (read.outcome.kind != OutcomeKind::applied) return read;
  // Verified: the body is WeChat Pay's. It must say what is set, for this sub-merchant.
  read.outcome.applied.reset();
  read.outcome.warning.clear();
  const auto body = observation.body;
  const auto json = body.size() > kMaxBodyBytes
                        ? nlohmann::json(nlohmann::json::value_t::discarded)
                        : nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  std::string problem;
  if (!json.is_object()) {
    problem = "read answer is not a JSON object: \"" + excerpt(body, 64) + "\"";
  } else if (auto url = json.find("notify_url"); url != json.end() && !url->is_string()) {
    problem = "read answer's notify_url is not a string";
  } else if (auto m = json.find("mchid"); m != json.end() && (!m->is_string() || m->get<std::string>() != sub_mchid)) {
    problem = "read answer names another mchid: " + excerpt(m->dump(), 64);
  } else {
    // An absent notify_url, like an empty one, is "nothing set".
    read.live_notify_url = url == json.end() ? std::string() : url->get<std::string>();
    return read;
  }
  read.outcome.kind = OutcomeKind::transient;
  read.outcome.error_code = "READ_BODY_INVALID";
  read.outcome.error_message = problem;
  return read;
}

}  // namespace callbackd::wechatpay
