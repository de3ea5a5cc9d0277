// libFuzzer target: desired-row validation (operators' SQL is input too).
// Input: mchid, newline, notify_url. Property: messages stay short; what passes is ASCII,
// https, free of characters RFC 3986 never allows unencoded, fits the seed's limits, and its
// request body is valid JSON of the same values. The allowed-hosts check (notify_host.h) never
// grows a message without bound, finds a host in every valid URL, and its canonical form is a
// fixed point (canonicalising it again changes nothing).
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/desired/notify_host.h"
#include "core/desired/validation.h"
#include "core/wechatpay/favor_callbacks.h"
#include "fuzz_support.h"

using namespace callbackd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto f = fuzz::split_fields(data, size, 2);
  const auto host = desired::notify_url_host(f[1]);
  if (host) fuzz::require(desired::canonical_host(*host) == host);
  const auto allowed = desired::parse_allowed_hosts({std::string(f[0]), "hooks.example.com", "*.example.org"});
  if (const auto refused = desired::check_notify_host(f[1], allowed)) fuzz::require(refused->message.size() < 1024);
  const auto error = desired::validate_desired(f[0], f[1]);
  if (error) {
    fuzz::require(error->message.size() < 512);
    return 0;
  }
  fuzz::require(!f[0].empty() && f[0].size() <= 20 && !f[1].empty() && f[1].size() <= 256);
  fuzz::require(std::string_view(f[1]).find_first_of("\"<>\\^`{|} ") == std::string_view::npos);
  fuzz::require(host.has_value());
  const std::string body = wechatpay::favor_callbacks_request_body(f[0], f[1], std::nullopt);
  const auto json = nlohmann::json::parse(body, nullptr, false);
  fuzz::require(!json.is_discarded() && json.contains("mchid") && json.contains("notify_url") &&
                json["mchid"] == std::string(f[0]) && json["notify_url"] == std::string(f[1]));
  return 0;
}
