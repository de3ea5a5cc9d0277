#include "core/text.h"

#include <charconv>
#include <cstdio>

namespace callbackd {

std::string human_duration(std::chrono::milliseconds d) {
  const long long ms = d.count() < 0 ? 0 : d.count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  const long long s = ms / 1000;
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else if (s < 86400)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  else
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
  return buf;
}

std::optional<std::chrono::milliseconds> duration_from_text(std::string_view text) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end == text.data() || v < 0) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  if (unit == "ms") return std::chrono::milliseconds{v};
  if (unit == "s") return std::chrono::seconds{v};
  if (unit == "m") return std::chrono::minutes{v};
  if (unit == "h") return std::chrono::hours{v};
  return std::nullopt;
}

}  // namespace callbackd
