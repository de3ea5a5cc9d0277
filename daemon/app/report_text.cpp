#include "app/report_text.h"

#include <cstdio>

namespace callbackd::app {

std::string printable(std::string_view text, std::size_t max_bytes) {
  std::size_t cut = text.size();
  if (cut > max_bytes) {
    cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  }
  std::string out;
  bool quote = text.empty();
  for (unsigned char c : text.substr(0, cut)) {
    if (c < 0x20 || c >= 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
      quote = true;
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      quote = true;
    } else {
      if (c == ' ') quote = true;
      out += static_cast<char>(c);
    }
  }
  if (quote) out = "\"" + out + "\"";
  if (cut < text.size()) out += "…(" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace callbackd::app
