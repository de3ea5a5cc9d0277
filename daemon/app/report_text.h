// Text helpers for the terminal reports of `plan` and `status`.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/text.h"

namespace callbackd::app {

// `text` safe to print on one terminal line: desired rows are stored verbatim (an invalid row
// may hold a newline or an escape sequence), so control and non-ASCII bytes become \xNN and a
// value with spaces, quotes or backslashes is double-quoted. "" prints as "". Longer than
// `max_bytes`: cut on a UTF-8 boundary and marked "…(N bytes)", so that a 200 kB mchid or a
// 10 MB URL stays one readable line (the full value is in the database).
inline constexpr std::size_t kPrintableMaxBytes = 1024;
std::string printable(std::string_view text, std::size_t max_bytes = kPrintableMaxBytes);

using callbackd::human_duration;  // core/text.h

}  // namespace callbackd::app
