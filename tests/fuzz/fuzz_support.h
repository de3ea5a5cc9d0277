// Shared by the fuzz targets: splitting one input into fields, and a fixed key set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/wechatpay/verification.h"

namespace callbackd::fuzz {

// Splits at the first `count - 1` newlines; the last part keeps any further newlines, so a
// body can hold anything.
inline std::vector<std::string_view> split_fields(const std::uint8_t* data, std::size_t size, std::size_t count) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < count) {
    const std::size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) break;
    parts.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  parts.push_back(rest);
  while (parts.size() < count) parts.emplace_back();
  return parts;
}

// A property the target checks; a failure must be a crash for the fuzzer to report it.
inline void require(bool condition) {
  if (!condition) std::abort();
}

// The Go SDK test public key (public material, safe to embed) under a public-key id and as a
// stand-in certificate serial, so that fuzzed serials can hit both lookup paths.
inline const wechatpay::KeySet& fuzz_key_set() {
  static const wechatpay::KeySet keys = [] {
    static constexpr std::string_view kPem =
        "-----BEGIN PUBLIC KEY-----\n"
        "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2VCTd91fnUn73Xy9DLvt\n"
        "/V62TVxRTEEstVdeRaZ3B3leO0pldE806mXO4RwdHXagHQ4vGeZN0yqm++rDsGK+\n"
        "U3AH7kejyD2pXshNP9Cq5YwbptiLGtjcquw4HNxJQUOmDeJf2vg6byms9RUipiq4\n"
        "SzbJKqJFlUpbuIPDpSpWz10PYmyCNeDGUUK65E5h2B834uxl1zNLYQCrkdBzb8oU\n"
        "xwYeP5a2DNxmjL5lsJML7DGr5znsevnoqGRwTm9fxCGfy8wus7hwKz6clt3Whmmd\n"
        "a7UAdb1c08hEQFVRbF14AR73xbnd8N0obCWJPCbzMCtkaSef4FdEEgEXJiw0VAJT\n"
        "8wIDAQAB\n"
        "-----END PUBLIC KEY-----\n";
    wechatpay::KeySet set;
    auto key = wechatpay::parse_verification_key_pem(kPem, "fuzz key");
    require(key.ok());
    require(set.add("PUB_KEY_ID_0114232134912410000000000000000000", key.value()).ok());
    require(set.add("5157F09EFDC096DE15EBE81A47057A7232F1B8E1", key.value()).ok());
    return set;
  }();
  return keys;
}

}  // namespace callbackd::fuzz
