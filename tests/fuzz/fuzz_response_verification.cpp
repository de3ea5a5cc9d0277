// libFuzzer target: the response-header / verification path, then classification, as the
// transport runs them on every 2xx. Input: status byte, then newline-separated
// Wechatpay-Timestamp, -Nonce, -Signature, -Serial, -Signature-Type, Retry-After, then the body.
// An empty line means "header absent".
#include <chrono>
#include <cstdint>
#include <string>

#include "core/wechatpay/encoding.h"
#include "core/wechatpay/outcome.h"
#include "core/wechatpay/verification.h"
#include "fuzz_support.h"

using namespace callbackd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static constexpr int kStatuses[] = {200, 204, 400, 401, 403, 404, 429, 500, 502, 503, 301, 0};
  const int status = kStatuses[data[0] % (sizeof kStatuses / sizeof kStatuses[0])];
  const auto f = fuzz::split_fields(data + 1, size - 1, 7);
  auto opt = [](std::string_view v) { return v.empty() ? std::nullopt : std::optional<std::string>(v); };
  wechatpay::ResponseHeaders headers;
  headers.timestamp = opt(f[0]);
  headers.nonce = opt(f[1]);
  headers.signature = opt(f[2]);
  headers.serial = opt(f[3]);
  headers.signature_type = opt(f[4]);
  headers.retry_after = opt(f[5]);
  const std::string_view body = f[6];

  // "now" near the timestamp when it parses, so the signature check is reached too.
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1554208460));
  auto verified = wechatpay::verify_response(fuzz::fuzz_key_set(), headers, body, now);
  if (verified) {
    // Only seeds signed with the test key get here; any change to the body must break it.
    const std::string changed = std::string(body) + "x";
    fuzz::require(!wechatpay::verify_response(fuzz::fuzz_key_set(), headers, changed, now).ok());
  }
  const bool was_verified = verified.ok();

  wechatpay::AttemptObservation obs;
  obs.http_status = status;
  obs.headers = headers;
  obs.body = body;
  obs.verification = std::move(verified);
  const auto outcome = wechatpay::classify_attempt(obs);
  fuzz::require(outcome.kind != wechatpay::OutcomeKind::applied || (was_verified && status >= 200 && status < 300));
  fuzz::require(outcome.error_message.size() < 2048);

  if (headers.signature) {  // strict base64 decodes only what re-encodes identically
    if (auto raw = wechatpay::base64_decode(*headers.signature))
      fuzz::require(wechatpay::base64_encode(*raw) == *headers.signature);
  }
  return 0;
}
