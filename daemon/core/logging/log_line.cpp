#include "core/logging/log_line.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace callbackd::logging {

namespace {

bool key_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-'; }

// Length of `key=` at `pos` (key characters then '='), or 0.
std::size_t key_at(std::string_view s, std::size_t pos) {
  std::size_t i = pos;
  while (i < s.size() && key_char(s[i])) ++i;
  return (i > pos && i < s.size() && s[i] == '=') ? i - pos + 1 : 0;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Replaces, after every occurrence of `marker` (case-insensitive), the text up to the first of
// `stops` (or the end) by `replacement`.
void replace_after(std::string& s, std::string_view marker, std::string_view stops, std::string_view replacement) {
  std::size_t from = 0;
  for (int guard = 0; guard < 10'000; ++guard) {  // each pass moves `from` forward
    const std::string l = lower(s);
    const std::size_t at = l.find(marker, from);
    if (at == std::string::npos) return;
    const std::size_t start = at + marker.size();
    std::size_t end = s.find_first_of(stops, start);
    if (end == std::string::npos) end = s.size();
    // An empty value (`signature="` already handled, or nothing there) is left alone.
    if (end > start && s.compare(start, end - start, replacement) != 0) s.replace(start, end - start, replacement);
    from = start + replacement.size();
  }
}

bool secret_key(const std::string& key) {
  const std::string k = lower(key);
  for (const char* word : {"authorization", "signature", "private_key", "secret", "password", "api_v3_key"})
    if (k.find(word) != std::string::npos) return true;
  return false;
}

// A typed value as JSON: numbers and booleans as such (their text came from the code, never
// from outside), text as a string.
nlohmann::ordered_json json_value(const Field& f) {
  switch (f.kind) {
    case Field::Kind::integer: {
      std::int64_t n = 0;
      std::uint64_t u = 0;
      const char* end = f.value.data() + f.value.size();
      if (auto [p, ec] = std::from_chars(f.value.data(), end, n); ec == std::errc{} && p == end) return n;
      if (auto [p, ec] = std::from_chars(f.value.data(), end, u); ec == std::errc{} && p == end) return u;
      break;
    }
    case Field::Kind::real: {
      double x = 0;
      const char* end = f.value.data() + f.value.size();
      if (auto [p, ec] = std::from_chars(f.value.data(), end, x); ec == std::errc{} && p == end) return x;
      break;
    }
    case Field::Kind::boolean:
      return f.value == "true";
    case Field::Kind::text:
      break;
  }
  return f.value;
}

// The code point of the UTF-8 sequence at the start of `s` and its length; length 0 when it is
// not a valid sequence (truncated, overlong, a surrogate, beyond U+10FFFF).
std::pair<char32_t, std::size_t> decode_utf8(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  std::size_t len = 0;
  char32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF)
    len = 2, cp = b0 & 0x1F;
  else if (b0 >= 0xE0 && b0 <= 0xEF)
    len = 3, cp = b0 & 0x0F;
  else if (b0 >= 0xF0 && b0 <= 0xF4)
    len = 4, cp = b0 & 0x07;
  else
    return {0, 0};
  if (s.size() < len) return {0, 0};
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[k]);
    if ((b & 0xC0) != 0x80) return {0, 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return {0, 0};
  return {cp, len};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Characters that are valid text but reshape what a reader sees: C1 controls (U+0085 is a line
// break to some tools), bidi overrides and isolates (U+202E shows "exe.gnp" as "png.exe"),
// zero-width and invisible characters, the line and paragraph separators, the BOM.
bool display_unsafe(char32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || cp == 0x061C || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xFEFF;
}

std::string hex_escape(char kind, char32_t value, int digits) {
  char buf[12];
  std::snprintf(buf, sizeof buf, "\\%c%0*x", kind, digits, static_cast<unsigned>(value));
  return buf;
}

// JSON as nlohmann writes it keeps non-ASCII text raw (readable); the display-unsafe
// characters among it become \uXXXX escapes, as valid in a JSON string as the raw bytes.
std::string escape_display_unsafe(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (std::size_t i = 0; i < json.size();) {
    const auto u = static_cast<unsigned char>(json[i]);
    if (u < 0x80) {
      out += json[i++];
      continue;
    }
    const auto [cp, len] = decode_utf8(std::string_view(json).substr(i));
    if (len == 0) {  // not produced by the dump (invalid bytes became U+FFFD); kept as is
      out += json[i++];
      continue;
    }
    out += display_unsafe(cp) ? hex_escape('u', cp, 4) : json.substr(i, len);
    i += len;
  }
  return out;
}

}  // namespace

std::string Field::real_text(double x) { return fmt::format("{}", x); }

std::optional<Fields> parse_logfmt(std::string_view s) {
  Fields out;
  std::size_t pos = 0;
  if (s.size() >= 3 && s[0] == '<' && s[2] == '>') pos = 3;  // journald priority
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  while (pos < s.size()) {
    if (!out.empty()) {
      if (s[pos] != ' ') return std::nullopt;
      ++pos;
    }
    const std::size_t klen = key_at(s, pos);
    if (klen == 0) return std::nullopt;
    std::string key(s.substr(pos, klen - 1));
    pos += klen;
    std::string value;
    if (pos < s.size() && s[pos] == '"') {
      ++pos;
      for (;;) {
        if (pos >= s.size()) return std::nullopt;  // unterminated
        const char c = s[pos++];
        if (c == '"') break;
        if (c != '\\') {
          value += c;
          continue;
        }
        if (pos >= s.size()) return std::nullopt;
        const char e = s[pos++];
        switch (e) {
          case '"':
            value += '"';
            break;
          case '\\':
            value += '\\';
            break;
          case 'n':
            value += '\n';
            break;
          case 'r':
            value += '\r';
            break;
          case 't':
            value += '\t';
            break;
          case 'x':
          case 'u': {
            const std::size_t digits = e == 'x' ? 2 : 4;
            if (pos + digits > s.size()) return std::nullopt;
            char32_t n = 0;
            for (std::size_t k = 0; k < digits; ++k) {
              if (hex(s[pos + k]) < 0) return std::nullopt;
              n = n * 16 + static_cast<char32_t>(hex(s[pos + k]));
            }
            pos += digits;
            if (e == 'x')
              value += static_cast<char>(n);
            else
              append_utf8(value, n);
            break;
          }
          default:
            return std::nullopt;
        }
      }
    } else {
      const std::size_t end = std::min(s.find(' ', pos), s.size());
      value = std::string(s.substr(pos, end - pos));
      if (value.find_first_of("\"=\\") != std::string::npos) return std::nullopt;
      pos = end;
    }
    out.push_back({std::move(key), std::move(value)});
  }
  return out;
}

std::string redact(std::string_view text) {
  std::string s(text);
  const std::string_view r = "[redacted]";
  // Whole header lines and credentials: everything to the end of the line.
  replace_after(s, "authorization:", "\r\n", " [redacted]");
  replace_after(s, "wechatpay-signature:", "\r\n", " [redacted]");
  replace_after(s, "wechatpay2-sha256-rsa2048", "\r\n", " [redacted]");
  replace_after(s, "signature=\"", "\"", r);
  replace_after(s, "signature=", " ,;\"\r\n", r);
  replace_after(s, "password=", " ,;\"\r\n", r);
  // PEM private keys, to their END line (or the end of the text). Certificates and public
  // keys are no secret and stay.
  std::size_t from = 0;
  for (int guard = 0; guard < 1'000; ++guard) {
    const std::string l = lower(s);
    const std::size_t begin = l.find("-----begin", from);
    if (begin == std::string::npos) break;
    const std::size_t header_end = l.find("-----", begin + 10);
    const std::size_t header_stop = header_end == std::string::npos ? l.size() : header_end;
    if (l.substr(begin, header_stop - begin).find("private") == std::string::npos) {
      from = begin + 10;
      continue;
    }
    std::size_t end = l.find("-----end", header_stop);
    if (end != std::string::npos) {
      const std::size_t close = l.find("-----", end + 8);
      end = close == std::string::npos ? s.size() : close + 5;
    } else {
      end = s.size();
    }
    s.replace(begin, end - begin, "[redacted private key]");
    from = begin;
  }
  return s;
}

void redact(Fields& fields) {
  for (auto& f : fields) {
    if (secret_key(f.key))
      f = Field{std::move(f.key), "[redacted]"};
    else if (f.kind == Field::Kind::text)
      f.value = redact(f.value);
  }
}

const char* level_name(Level level) {
  switch (level) {
    case Level::trace:
      return "trace";
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::critical:
      return "critical";
  }
  return "info";
}

int journal_priority(Level level) {
  switch (level) {
    case Level::trace:
    case Level::debug:
      return 7;
    case Level::info:
      return 6;
    case Level::warn:
      return 4;
    case Level::error:
      return 3;
    case Level::critical:
      return 2;
  }
  return 6;
}

std::string clip(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t cut = max_bytes;
  // Back over UTF-8 continuation bytes (10xxxxxx) so that a character is not split.
  for (int back = 0; back < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++back) --cut;
  return std::string(text.substr(0, cut)) + "...(" + std::to_string(text.size()) + " bytes)";
}

void bound(Fields& fields, std::size_t max_bytes) {
  for (auto& f : fields)
    if (f.kind == Field::Kind::text && f.value.size() > max_bytes) f.value = clip(f.value, max_bytes);
}

std::string iso8601_utc(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(ms / 1000);
  tm parts{};
  gmtime_r(&secs, &parts);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::string logfmt_value(std::string_view v) {
  bool quote = v.empty();
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || u < 0x20 || u >= 0x7f) quote = true;
  }
  if (!quote) return std::string(v);
  std::string out = "\"";
  for (std::size_t i = 0; i < v.size();) {
    const char c = v[i];
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      // UTF-8 passes through, readable in the journal; a byte that is not part of a valid
      // sequence becomes \xHH, a character that reorders or hides text becomes \uXXXX.
      const auto [cp, len] = decode_utf8(v.substr(i));
      if (len == 0) {
        out += hex_escape('x', u, 2);
        i += 1;
      } else {
        out += display_unsafe(cp) ? hex_escape('u', cp, 4) : std::string(v.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += (u < 0x20 || u == 0x7f) ? hex_escape('x', u, 2) : std::string(1, c);
    }
    ++i;
  }
  return out + "\"";
}

std::string render_line(const LineStyle& style, Level level, const std::string& timestamp, const Fields& fields) {
  std::string line;
  if (style.journald) line = "<" + std::to_string(journal_priority(level)) + ">";
  if (style.json) {
    nlohmann::ordered_json j;
    if (!style.journald) j["ts"] = timestamp;
    j["level"] = level_name(level);
    for (const auto& f : fields) {
      // A repeated key keeps every value: the later one gets a suffix.
      std::string key = f.key;
      for (int n = 2; j.contains(key) && n < 100; ++n) key = f.key + "_" + std::to_string(n);
      j[key] = json_value(f);
    }
    // Bytes from the network that are not UTF-8 must not make the line invalid JSON.
    line += escape_display_unsafe(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return line;
  }
  if (!style.journald) line += "ts=" + timestamp + " ";
  line += "level=";
  line += level_name(level);
  for (const auto& f : fields) line += " " + f.key + "=" + logfmt_value(f.value);
  return line;
}

RepeatLimiter::RepeatLimiter(int burst, std::chrono::seconds window, std::size_t max_keys)
    : burst_(burst), window_(window), max_keys_(max_keys) {}

std::string RepeatLimiter::key_of(const Fields& fields) {
  std::string event, tenant, code;
  bool error = false;
  for (const auto& f : fields) {
    if (f.key == "event")
      event = f.value;
    else if (f.key == "tenant")
      tenant = f.value;
    else if (f.key == "code" || f.key == "error_code")
      code = f.value, error = true;
    else if (f.key == "error")
      error = true;
  }
  if (!error) return "";
  return event + "|" + tenant + "|" + code;
}

RepeatLimiter::Verdict RepeatLimiter::admit(const std::string& key, Clock::time_point now) {
  if (key.empty()) return {};
  auto it = windows_.find(key);
  if (it == windows_.end()) {
    if (windows_.size() >= max_keys_) {
      // Bounded memory: forget windows that ended; if none did, do not limit the new key.
      for (auto w = windows_.begin(); w != windows_.end();)
        w = (now - w->second.started >= window_ && w->second.dropped == 0) ? windows_.erase(w) : std::next(w);
      if (windows_.size() >= max_keys_) return {};
    }
    windows_[key] = Window{now, 1, 0};
    return {};
  }
  Window& w = it->second;
  Verdict v;
  if (now - w.started >= window_) {
    v.suppressed_before = w.dropped;
    w = Window{now, 0, 0};
  }
  if (w.lines < burst_) {
    ++w.lines;
    v.emit = true;
  } else {
    ++w.dropped;
    v.emit = false;
  }
  return v;
}

std::vector<std::pair<std::string, std::uint64_t>> RepeatLimiter::flush(Clock::time_point now) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now - it->second.started < window_) {
      ++it;
      continue;
    }
    if (it->second.dropped > 0) out.emplace_back(it->first, it->second.dropped);
    it = windows_.erase(it);
  }
  return out;
}

}  // namespace callbackd::logging
