// libFuzzer target: the Authorization header parser (sandbox side, hostile input).
// Property: whatever parses re-formats into a header that parses to the same fields.
#include <cstdint>
#include <string>

#include "core/wechatpay/authorization.h"
#include "fuzz_support.h"

using namespace callbackd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  const auto parsed = wechatpay::parse_authorization(header);
  if (!parsed) {
    fuzz::require(parsed.error().message.size() < 256);  // never echoes the input at length
    return 0;
  }
  const auto& f = parsed.value();
  fuzz::require(!f.caller_mchid.empty() && !f.nonce_str.empty() && !f.serial_no.empty() && !f.signature.empty());
  const std::string again = "WECHATPAY2-SHA256-RSA2048 mchid=\"" + f.caller_mchid + "\",nonce_str=\"" + f.nonce_str +
                            "\",timestamp=\"" + std::to_string(f.timestamp) + "\",serial_no=\"" + f.serial_no +
                            "\",signature=\"" + f.signature + "\"";
  const auto reparsed = wechatpay::parse_authorization(again);
  fuzz::require(reparsed.ok());
  fuzz::require(reparsed->caller_mchid == f.caller_mchid && reparsed->nonce_str == f.nonce_str &&
                reparsed->timestamp == f.timestamp && reparsed->serial_no == f.serial_no &&
                reparsed->signature == f.signature);
  return 0;
}
