// libFuzzer target: the /v3/certificates answer (core/wechatpay/platform_certificates.h):
// parsed, each entry opened with a fixed APIv3 key, and judged as a whole. Input: the body.
#include <cstdint>

#include "core/wechatpay/platform_certificates.h"
#include "fuzz_support.h"

using namespace callbackd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  static const wechatpay::ApiV3Key key = wechatpay::parse_apiv3_key("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", "fuzz").value();
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1704067200));

  const auto entries = wechatpay::parse_certificates_answer(body);
  if (entries) {
    fuzz::require(!entries->empty());
    for (const auto& entry : *entries) {
      const auto opened = wechatpay::open_certificate(entry, key, now, nullptr);
      // Whatever opened is a certificate under the serial the answer names, valid now.
      if (opened)
        fuzz::require(opened->effective <= now && now <= opened->expiry && !opened->serial.empty());
      else
        fuzz::require(!opened.error().message.empty());
    }
  } else {
    fuzz::require(entries.error().kind == wechatpay::CertificateError::Kind::malformed_answer);
  }
  // Unsigned, it is never accepted, whatever it holds.
  const auto verdict = wechatpay::judge_certificates_download(200, body, {}, key, {}, now, nullptr);
  fuzz::require(verdict.kind == wechatpay::DownloadVerdict::Kind::refused && verdict.certificates.empty());
  return 0;
}
