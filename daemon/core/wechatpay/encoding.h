// Text helpers for bytes that cross the wire.
// Standard base64 (RFC 4648 section 4, with '=' padding), as WeChat Pay uses for signatures.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd::wechatpay {

std::string base64_encode(std::string_view bytes);

// Strict: only the standard alphabet, length a multiple of 4, padding only at the end and only
// where needed, unused trailing bits zero. No whitespace. nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view text);

// At most `max_bytes` of `text`, cut on a UTF-8 character boundary, with control characters
// (C0, DEL, C1) and bidirectional overrides/marks replaced by '?', and "…(N bytes)" appended
// when cut. Used wherever a value from outside is echoed into a message.
std::string excerpt(std::string_view text, std::size_t max_bytes);

}  // namespace callbackd::wechatpay
