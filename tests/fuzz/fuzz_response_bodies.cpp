// libFuzzer target: the 200 body and error body parsers (strict and lenient), through the
// classifier as if the response had verified. Input: status byte, then the body.
#include <cstdint>

#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/outcome.h"
#include "fuzz_support.h"

using namespace callbackd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const int status = 100 + data[0] * 2;  // 100..610, covers every class and some invalid ones
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);

  const auto error = wechatpay::parse_error_body(body);
  fuzz::require(error.code.size() <= 64 + 32 && error.message.size() <= wechatpay::kMaxErrorMessageBytes + 32);

  const auto applied = wechatpay::parse_favor_callbacks_response(body);
  if (applied) fuzz::require(wechatpay::parse_update_time(applied->update_time_text) == applied->update_time);
  // The lenient reading (a verified 2xx) agrees with the strict one whenever that succeeds.
  const auto reading = wechatpay::read_favor_callbacks_response(body);
  fuzz::require(reading.problem.has_value() != applied.ok());
  fuzz::require(reading.applied.update_time_text.size() <= 64 && reading.applied.notify_url.size() <= 1024);

  wechatpay::AttemptObservation obs;
  obs.http_status = status;
  obs.body = body;
  obs.verification = callbackd::Result<wechatpay::VerifiedResponse, wechatpay::VerifyError>(
      wechatpay::VerifiedResponse{"PUB_KEY_ID_FUZZ"});
  const auto outcome = wechatpay::classify_attempt(obs);
  fuzz::require((outcome.kind == wechatpay::OutcomeKind::applied) == outcome.applied.has_value());
  // Verified, so every 2xx is applied (outcome.h); a body that is not the documented one
  // carries a warning, and only then.
  fuzz::require((outcome.kind == wechatpay::OutcomeKind::applied) == (status >= 200 && status < 300));
  if (outcome.kind == wechatpay::OutcomeKind::applied) fuzz::require(outcome.warning.empty() == applied.ok());
  // A non-2xx parks the row or pauses the tenant only on WeChat Pay's own error body.
  if (outcome.kind == wechatpay::OutcomeKind::rejected || outcome.kind == wechatpay::OutcomeKind::tenant_error)
    fuzz::require(error.wechatpay_format);
  return 0;
}
