#include "core/wechatpay/favor_callbacks.h"

#include <nlohmann/json.hpp>

#include "core/wechatpay/encoding.h"

namespace callbackd::wechatpay {
namespace {

using nlohmann::json;

// Bodies of this endpoint are tens of bytes; anything far larger is not a WeChat Pay answer
// and is not worth parsing (the transport caps responses too, this keeps the parser safe alone).
constexpr std::size_t kMaxBodyBytes = 64 * 1024;
constexpr std::size_t kMaxCodeBytes = 64;
constexpr std::size_t kExcerptBytes = 64;

std::string json_string(std::string_view s) {
  // dump() escapes as JSON requires; `replace` turns invalid UTF-8 into U+FFFD instead of throwing.
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Parses without exceptions: a syntax error gives a discarded value.
json parse_json(std::string_view body) {
  if (body.size() > kMaxBodyBytes) return json(json::value_t::discarded);
  return json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
}

const std::string* string_member(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

// Keeps at most `max_bytes` and no partial UTF-8 sequence at the end.
std::string bounded(const std::string& s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

}  // namespace

std::string favor_callbacks_request_body(std::string_view sub_merchant_mchid, std::string_view notify_url,
                                         std::optional<bool> push_switch) {
  std::string body = "{\"mchid\":" + json_string(sub_merchant_mchid) + ",\"notify_url\":" + json_string(notify_url);
  if (push_switch) body += *push_switch ? ",\"switch\":true" : ",\"switch\":false";
  body += '}';
  return body;
}

FavorCallbacksReading read_favor_callbacks_response(std::string_view body) {
  FavorCallbacksReading r;
  if (body.size() > kMaxBodyBytes) {
    r.problem = BodyError{"response body is " + std::to_string(body.size()) + " bytes, not a favor/callbacks answer"};
    return r;
  }
  const json doc = parse_json(body);
  if (doc.is_discarded() || !doc.is_object()) {
    r.problem = BodyError{"response body is not a JSON object: \"" + excerpt(body, kExcerptBytes) + "\""};
    return r;
  }
  // Bounded: the values go to the database; the seed caps notify_url at 256 bytes.
  const std::string* update_time = string_member(doc, "update_time");
  const std::string* notify_url = string_member(doc, "notify_url");
  if (update_time) {
    r.applied.update_time_text = bounded(*update_time, 64);
    r.applied.update_time = parse_update_time(*update_time);
  }
  if (notify_url) r.applied.notify_url = bounded(*notify_url, 1024);
  if (update_time == nullptr)
    r.problem = BodyError{"response body has no update_time string"};
  else if (notify_url == nullptr)
    r.problem = BodyError{"response body has no notify_url string"};
  else if (!r.applied.update_time)
    r.problem = BodyError{"update_time is not RFC 3339: \"" + excerpt(*update_time, kExcerptBytes) + "\""};
  return r;
}

Result<FavorCallbacksApplied, BodyError> parse_favor_callbacks_response(std::string_view body) {
  FavorCallbacksReading r = read_favor_callbacks_response(body);
  if (r.problem) return std::move(*r.problem);
  return std::move(r.applied);
}

ApiError parse_error_body(std::string_view body) {
  ApiError error;
  const json doc = parse_json(body);
  if (doc.is_discarded() || !doc.is_object()) return error;
  if (const std::string* code = string_member(doc, "code"))
    error.code = excerpt(bounded(*code, kMaxCodeBytes), kMaxCodeBytes);
  const std::string* message = string_member(doc, "message");
  if (message) error.message = excerpt(*message, kMaxErrorMessageBytes);
  error.wechatpay_format = !error.code.empty() && message != nullptr;
  return error;
}

}  // namespace callbackd::wechatpay
