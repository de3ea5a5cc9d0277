// The Authorization header of a WeChat Pay v3 request, as a value:
//   WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="…",timestamp="1554208460",
//   serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="…"
// Formatting is in signing.h (authorization_header); this header parses it, for the sandbox,
// which verifies requests the way WeChat Pay does. The parser treats its input as hostile.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/wechatpay/keys.h"

namespace callbackd::wechatpay {

struct AuthorizationFields {
  std::string caller_mchid;
  std::string nonce_str;
  std::int64_t timestamp = 0;  // Unix seconds
  std::string serial_no;
  std::string signature;  // base64, as sent (not decoded)
};

struct AuthorizationError {
  std::string message;  // why it was refused; never echoes more than a short prefix of the input
};

// Accepts "WECHATPAY2-SHA256-RSA2048" (case-sensitive), one or more spaces, then exactly the
// five fields mchid, nonce_str, timestamp, serial_no, signature in any order, each as
// name="value", separated by "," (optional spaces around commas). Values contain no '"',
// '\\', control characters or non-ASCII; the timestamp is 1-18 decimal digits.
// Refused: another scheme, duplicate or unknown or missing fields, unquoted or unterminated
// values, an empty value, trailing garbage, input longer than 4096 bytes.
Result<AuthorizationFields, AuthorizationError> parse_authorization(std::string_view header);

// What WeChat Pay checks before it runs the request (sandbox side), given the merchant's key
// looked up by fields.mchid and fields.serial_no. Order: timestamp skew (|now - ts| >= 300 s),
// then the signature over request_message(method, request_uri, ts, nonce, body).
enum class RequestCheck { valid, stale_timestamp, bad_base64, bad_signature };
RequestCheck verify_request(const AuthorizationFields& fields, const VerificationKey& merchant_key,
                            std::string_view method, std::string_view request_uri, std::string_view body,
                            std::chrono::system_clock::time_point now);

}  // namespace callbackd::wechatpay
