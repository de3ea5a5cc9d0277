#include "sandbox/favor_request.h"

#include <nlohmann/json.hpp>

namespace callbackd::sandbox {

std::optional<std::size_t> utf8_length(std::string_view s) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return std::nullopt;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return std::nullopt;
    i += len;
    ++chars;
  }
  return chars;
}

namespace {

// Checks one required string field; empty optional on success, the error otherwise.
std::optional<ParamError> check_string(const nlohmann::json& obj, const char* field, std::size_t max_chars,
                                       const char* missing_text, std::string& out) {
  const std::string range = std::string(" (a string of 1-") + std::to_string(max_chars) + " characters)";
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return ParamError{std::string(field) + ": " + missing_text + range};
  if (!it->is_string()) return ParamError{std::string(field) + ": 类型错误, expected" + range};
  const auto& s = it->get_ref<const std::string&>();
  const auto len = utf8_length(s);
  if (!len) return ParamError{std::string(field) + ": invalid UTF-8"};
  if (*len == 0) return ParamError{std::string(field) + ": " + missing_text + range};
  if (*len > max_chars) return ParamError{std::string(field) + ": 长度超过限制" + range};
  out = s;
  return std::nullopt;
}

}  // namespace

Result<FavorSetRequest, ParamError> parse_favor_set_request(std::string_view body) {
  // No exceptions: a parse failure yields a "discarded" value.
  const auto doc = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded()) return ParamError{"body: 输入源“/body”映射到值字段失败 (malformed JSON)"};
  if (!doc.is_object()) return ParamError{"body: expected a JSON object"};
  FavorSetRequest req;
  if (auto e = check_string(doc, "mchid", 20, "商户号必填", req.sub_mchid)) return *e;
  if (auto e = check_string(doc, "notify_url", 256, "回调 url 不能为空", req.notify_url)) return *e;
  if (auto it = doc.find("switch"); it != doc.end() && !it->is_null()) {
    if (!it->is_boolean()) return ParamError{"switch: 类型错误, expected true or false"};
    req.push_switch = it->get<bool>();
  }
  return req;
}

Result<std::string, ParamError> parse_favor_query(std::string_view query) {
  // Only mchid is defined; it is digits in practice, so no percent-decoding is attempted
  // beyond refusing what would need it.
  std::string_view rest = query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.substr(0, 6) == "mchid=") {
      std::string_view v = pair.substr(6);
      if (v.empty()) break;
      if (v.size() > 20 || v.find('%') != std::string_view::npos)
        return ParamError{"mchid: 商户号不合法 (1-20 characters)"};
      return std::string(v);
    }
  }
  return ParamError{"mchid: 商户号必填"};
}

namespace {

Result<FavorSetRequest, ParamError> out_of_band_setting(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return ParamError{where + "a JSON object {\"mchid\", \"notify_url\"} is expected"};
  const auto mchid = j.find("mchid");
  const auto url = j.find("notify_url");
  if (mchid == j.end() || !mchid->is_string() || mchid->get<std::string>().empty())
    return ParamError{where + "mchid: a non-empty string is required"};
  if (url == j.end() || !url->is_string())
    return ParamError{where + "notify_url: a string is required (\"\" removes the setting)"};
  FavorSetRequest set;
  set.sub_mchid = mchid->get<std::string>();
  set.notify_url = url->get<std::string>();
  if (const auto sw = j.find("switch"); sw != j.end()) {
    if (!sw->is_boolean()) return ParamError{where + "switch: true or false"};
    set.push_switch = sw->get<bool>();
  }
  return set;
}

}  // namespace

Result<std::vector<FavorSetRequest>, ParamError> parse_out_of_band_set(std::string_view body) {
  const auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  std::vector<FavorSetRequest> sets;
  if (!j.is_array()) {
    auto one = out_of_band_setting(j, "POST /sandbox/set: ");
    if (!one) return one.error();
    sets.push_back(std::move(one).value());
    return sets;
  }
  for (std::size_t i = 0; i < j.size(); ++i) {
    auto one = out_of_band_setting(j[i], "POST /sandbox/set: [" + std::to_string(i) + "] ");
    if (!one) return one.error();
    sets.push_back(std::move(one).value());
  }
  return sets;
}

}  // namespace callbackd::sandbox
