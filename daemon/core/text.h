// Small text helpers shared by the daemon's layers, so that no file keeps its own copy.
// (Prefix tests need none: std::string_view::starts_with is C++20.)
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd {

// `s` without leading and trailing ASCII whitespace, e.g. libpq's message without its final
// newline, ready to be embedded in a sentence.
inline std::string trimmed(std::string_view s) {
  constexpr std::string_view whitespace = " \t\r\n";
  const auto first = s.find_first_not_of(whitespace);
  if (first == std::string_view::npos) return {};
  return std::string(s.substr(first, s.find_last_not_of(whitespace) - first + 1));
}

// "850ms", "42s", "4m12s", "3h05m", "2d04h": a delay, an age or an ETA at a glance.
std::string human_duration(std::chrono::milliseconds d);

// A duration with its unit: "250ms", "10s", "5m", "1h" (a whole, non-negative number). A bare
// number or another unit is nullopt: nobody can tell whether 10 meant seconds or milliseconds.
std::optional<std::chrono::milliseconds> duration_from_text(std::string_view text);

}  // namespace callbackd
