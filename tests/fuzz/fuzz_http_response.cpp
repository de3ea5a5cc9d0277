// libFuzzer target: what the daemon reads of a response, from the raw bytes on the connection:
// Beast's response parser with the client's limits, the header fields kept as the transport
// keeps them (http::keep_response_header), the Wechatpay-* and Retry-After values handed to
// verification (http::response_headers, wechatpay::verify_response), then the outcome.
// Property: hostile bytes never crash; nothing counts as applied unless a 2xx verified;
// Retry-After never exceeds its cap; the kept headers are exactly the Wechatpay-* fields.
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/wechatpay/outcome.h"
#include "core/wechatpay/verification.h"
#include "fuzz_support.h"
#include "http/https_client.h"

using namespace callbackd;
namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(http::kMaxResponseHeaderBytes);
  parser.body_limit(WechatpayConfig{}.max_response_bytes);
  boost::beast::error_code ec;
  std::size_t used = 0;
  auto feed_until = [&](auto done) {
    while (used < size && !done()) {
      const std::size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
      if (ec || n == 0) break;
      used += n;
    }
  };
  // As the transport reads (https_client.cpp, exchange()): the header on its own, then the
  // rest eagerly. (One eager pass reserved a refused Content-Length: crash-content-length-7eb.)
  parser.eager(false);
  feed_until([&] { return parser.is_header_done(); });
  if (ec || !parser.is_header_done()) return 0;
  parser.eager(true);
  feed_until([&] { return parser.is_done(); });
  // The server closing the connection ends a body that has no length (as async_read does on EOF).
  if (!ec && !parser.is_done() && parser.got_some()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return 0;  // the transport reports "malformed"/"closed": no outcome

  const auto& res = parser.get();
  http::HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  std::size_t wechatpay_fields = 0;
  for (const auto& field : res) {
    const std::string_view name(field.name_string().data(), field.name_string().size());
    http::keep_response_header(out, name, std::string_view(field.value().data(), field.value().size()));
    if (field.name_string().size() >= 10 && boost::beast::iequals(field.name_string().substr(0, 10), "Wechatpay-"))
      ++wechatpay_fields;
  }
  fuzz::require(out.wechatpay_headers.size() == wechatpay_fields);

  const wechatpay::ResponseHeaders headers = http::response_headers(out);
  // "now" at the response's own timestamp when it is one, so that the signature check is reached.
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'554'208'460));
  if (headers.timestamp && !headers.timestamp->empty() && headers.timestamp->size() <= 10 &&
      headers.timestamp->find_first_not_of("0123456789") == std::string::npos)
    now = std::chrono::system_clock::time_point(std::chrono::seconds(std::stoll(*headers.timestamp)));
  auto verified = wechatpay::verify_response(fuzz::fuzz_key_set(), headers, out.body, now);
  const bool was_verified = verified.ok();

  wechatpay::AttemptObservation obs;
  obs.http_status = out.status;
  obs.headers = headers;
  obs.body = out.body;
  obs.verification = std::move(verified);
  const auto outcome = wechatpay::classify_attempt(obs);
  fuzz::require(outcome.kind != wechatpay::OutcomeKind::applied ||
                (was_verified && out.status >= 200 && out.status < 300));
  if (outcome.retry_after) fuzz::require(*outcome.retry_after <= std::chrono::seconds{3600});  // outcome.h: capped
  fuzz::require(outcome.error_message.size() < 2048);
  return 0;
}
