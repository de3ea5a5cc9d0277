// What a log line looks like, as pure functions: an event is a name plus typed fields
// (core/logging/event.h); these bound and redact the values, render the line once as logfmt or
// JSON (one valid record per line, whatever bytes a value holds), and parse a logfmt line back.
// Also the limiter that keeps one error repeating thousands of times from flooding the
// journal. No I/O; time is a parameter.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd::logging {

// One field of an event. Values are typed: text is quoted and escaped by the writer (and
// bounded, and redacted); integers, reals, booleans and durations (whole milliseconds, the
// key says `_ms`) are written bare in logfmt and as JSON numbers/booleans. `value` holds the
// logfmt text of the value; `kind` says how JSON writes it. Keys come from the code, never
// from outside.
struct Field {
  enum class Kind : std::uint8_t { text, integer, real, boolean };
  std::string key;
  std::string value;
  Kind kind = Kind::text;

  Field(std::string k, std::string text) : key(std::move(k)), value(std::move(text)) {}
  Field(std::string k, std::string_view text) : key(std::move(k)), value(text) {}
  Field(std::string k, const char* text) : key(std::move(k)), value(text) {}
  template <std::integral T>
  requires(!std::same_as<T, bool>) Field(std::string k, T n)
      : key(std::move(k)), value(std::to_string(n)), kind(Kind::integer) {}
  template <std::same_as<bool> T>
  Field(std::string k, T b) : key(std::move(k)), value(b ? "true" : "false"), kind(Kind::boolean) {}
  template <std::floating_point T>
  Field(std::string k, T x) : key(std::move(k)), value(real_text(static_cast<double>(x))), kind(Kind::real) {}
  template <class Rep, class Period>
  Field(std::string k, std::chrono::duration<Rep, Period> d)
      : Field(std::move(k), static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count())) {}

  bool operator==(const Field&) const = default;

 private:
  static std::string real_text(double x);
};
using Fields = std::vector<Field>;

// A logfmt line as render_line writes it (an optional journald `<N>` prefix, then `key=value`
// separated by single spaces; a quoted value unescaped) -> its fields, all as text; nullopt
// when the line is not exactly that. The inverse of the logfmt writer, for tests and tools
// that read the daemon's output: a forged field would show up here as a field.
std::optional<Fields> parse_logfmt(std::string_view line);

// Text cut to at most `max_bytes` (never inside a UTF-8 sequence), marked when cut:
// "abc...(10485760 bytes)". A value from outside (an error text, a row's id) then cannot make a
// line of megabytes.
std::string clip(std::string_view text, std::size_t max_bytes);

// The bound the writer puts on every text value: an error message from WeChat Pay or
// PostgreSQL fits; a 10 MB value does not become a 10 MB line.
inline constexpr std::size_t kMaxValueBytes = 1024;

// An id from SQL (a tenant id, a sub-merchant id): valid ones are short, an invalid one (a
// 200 kB mchid) is cut to 64 bytes. It is written, escaped, like any text value; the stored
// value is always available verbatim in the database.
inline std::string log_id(std::string_view id) { return clip(id, 64); }

// Replaces secrets by "[redacted]": values of fields whose key names a secret (authorization,
// signature, private_key, secret, password, api_v3_key), and inside any text an
// `Authorization:`/`Wechatpay-Signature:` header, a `WECHATPAY2-SHA256-RSA2048 ...`
// credential, a `signature="..."` parameter, a PEM private key block, a `password=` in a
// conninfo.
std::string redact(std::string_view text);
void redact(Fields& fields);  // text values only

// Every text value cut to `max_bytes` (clip).
void bound(Fields& fields, std::size_t max_bytes = kMaxValueBytes);

enum class Level { trace, debug, info, warn, error, critical };
const char* level_name(Level level);
// syslog priority for journald's `<N>` prefix: debug 7, info 6, warning 4, err 3, crit 2.
int journal_priority(Level level);

struct LineStyle {
  bool json = false;
  bool journald = false;  // `<N>` prefix, no timestamp (the journal stamps each line)
};

// "2026-11-26T22:24:22.123Z"
std::string iso8601_utc(std::chrono::system_clock::time_point t);

// One line, without the trailing newline. `timestamp` is ISO 8601 text (ignored for journald).
// Every value is escaped (logfmt) or a JSON string/number/boolean: no value can end its field
// or the line.
std::string render_line(const LineStyle& style, Level level, const std::string& timestamp, const Fields& fields);

// logfmt value: bare when it holds no space, quote, '=', control or non-ASCII byte; otherwise
// quoted with \" \\ \n \r \t and \xHH escapes (other control bytes, bytes that are not valid
// UTF-8) and \uXXXX for characters that reshape what a reader sees (C1 controls, bidi
// overrides, zero-width characters, U+2028/2029); other UTF-8 text stays readable. JSON lines
// escape the same characters as \uXXXX.
std::string logfmt_value(std::string_view value);

// At most `burst` lines per key (event + tenant + code) within `window`; then lines of that key
// are dropped and counted. When a later line of the key arrives after its window, or flush() is
// called after it, the count of dropped lines is reported once (a summary line).
class RepeatLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RepeatLimiter(int burst = 10, std::chrono::seconds window = std::chrono::seconds{60}, std::size_t max_keys = 4096);

  struct Verdict {
    bool emit = true;
    std::uint64_t suppressed_before = 0;  // > 0: write a summary for this key first
  };
  // Lines without an error code/error (key empty) are never limited.
  Verdict admit(const std::string& key, Clock::time_point now);
  // Keys whose window ended with dropped lines: (key, count), each reported once.
  std::vector<std::pair<std::string, std::uint64_t>> flush(Clock::time_point now);

  // The key of a line: "event|tenant|code" when it carries a code or an error, else "".
  static std::string key_of(const Fields& fields);

 private:
  struct Window {
    Clock::time_point started;
    int lines = 0;
    std::uint64_t dropped = 0;
  };
  int burst_;
  std::chrono::seconds window_;
  std::size_t max_keys_;
  std::map<std::string, Window> windows_;
};

}  // namespace callbackd::logging
