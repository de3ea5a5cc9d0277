// libFuzzer target: what callbackd-sandbox reads of a request, from the raw bytes on the
// connection: Beast's request parser with the server's limits, then, as decide() runs them,
// the Authorization header (parse_authorization, verify_request), the GET query
// (parse_favor_query) and the POST body (parse_favor_set_request).
// Property: hostile bytes yield errors with short messages, never a crash; an accepted body
// holds exactly what the sandbox would store (valid UTF-8 within the documented lengths).
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/wechatpay/authorization.h"
#include "fuzz_support.h"
#include "sandbox/favor_request.h"
#include "sandbox/sandbox_config.h"

using namespace callbackd;
namespace bhttp = boost::beast::http;

namespace {

// The sandbox's limits (sandbox_server.cpp: header_limit 16 KiB, body_limit max_body_bytes).
constexpr std::size_t kHeaderLimit = 16 * 1024;
const std::size_t kBodyLimit = sandbox::Limits{}.max_body_bytes;

void check_requests_of(const bhttp::request<bhttp::string_body>& req) {
  const std::string target(req.target());
  const auto qpos = target.find('?');
  const std::string query = qpos == std::string::npos ? "" : target.substr(qpos + 1);

  if (const auto auth = req.find(bhttp::field::authorization); auth != req.end()) {
    const auto fields = wechatpay::parse_authorization(std::string_view(auth->value().data(), auth->value().size()));
    if (fields) {
      // "now" at the request's own timestamp when it is plausible, so that the signature check
      // is reached too; otherwise a fixed instant, which makes it stale.
      const std::int64_t now_s = fields->timestamp < 4'000'000'000 ? fields->timestamp : 1'554'208'460;
      const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(now_s));
      const auto* key = fuzz::fuzz_key_set().find("PUB_KEY_ID_0114232134912410000000000000000000");
      fuzz::require(key != nullptr);
      (void)wechatpay::verify_request(fields.value(), *key,
                                      std::string_view(req.method_string().data(), req.method_string().size()), target,
                                      req.body(), now);
    } else {
      fuzz::require(fields.error().message.size() < 256);
    }
  }

  const auto mchid = sandbox::parse_favor_query(query);
  if (mchid)
    fuzz::require(!mchid->empty() && mchid->size() <= 20 && mchid->find('%') == std::string::npos);
  else
    fuzz::require(mchid.error().message.size() < 256);

  const auto body = sandbox::parse_favor_set_request(req.body());
  if (!body) {
    fuzz::require(body.error().message.size() < 256);  // names the field, never echoes the body
    return;
  }
  const auto mchid_chars = sandbox::utf8_length(body->sub_mchid);
  const auto url_chars = sandbox::utf8_length(body->notify_url);
  fuzz::require(mchid_chars && *mchid_chars >= 1 && *mchid_chars <= 20);
  fuzz::require(url_chars && *url_chars >= 1 && *url_chars <= 256);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(kBodyLimit);
  parser.eager(true);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (used < size && !parser.is_done()) {
    const std::size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec || n == 0) break;
    used += n;
  }
  if (!parser.is_done()) return 0;  // the server closes such connections without a decision
  fuzz::require(parser.get().body().size() <= kBodyLimit);
  check_requests_of(parser.get());
  return 0;
}
