// What a log line looks like, as pure functions: the daemon's messages are written as
// `event=name key=value key="free text"`; these turn one into fields, take secrets out, and
// render the line as logfmt or JSON (one valid JSON object per line, whatever bytes the text
// holds). Also the limiter that keeps one error repeating thousands of times from flooding
// the journal. No I/O; time is a parameter.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd::logging {

struct Field {
  std::string key;
  std::string value;
  bool operator==(const Field&) const = default;
};
using Fields = std::vector<Field>;

// `event=x tenant=t error="a b"` -> {event,x} {tenant,t} {error,a b}. A quoted value ends at
// the first '"' followed by the end or by ` key=` (free text from the network may hold
// quotes). Text that does not start with key=value becomes one field "msg"; trailing text
// that is not key=value is kept under "msg" too. Never throws on any input.
Fields parse_message(std::string_view message);

// A logfmt line as render_line writes it (an optional journald `<N>` prefix, then `key=value`
// separated by single spaces; a quoted value unescaped) -> its fields; nullopt when the line
// is not exactly that. The inverse of the logfmt writer, for tests and tools that read the
// daemon's output: a forged field would show up here as a field.
std::optional<Fields> parse_logfmt(std::string_view line);

// Replaces secrets by "[redacted]": values of fields whose key names a secret (authorization,
// signature, private_key, secret, password, api_v3_key), and inside any text an
// `Authorization:`/`Wechatpay-Signature:` header, a `WECHATPAY2-SHA256-RSA2048 ...`
// credential, a `signature="..."` parameter, a PEM private key block, a `password=` in a
// conninfo.
std::string redact(std::string_view text);
void redact(Fields& fields);

enum class Level { trace, debug, info, warn, error, critical };
const char* level_name(Level level);
// syslog priority for journald's `<N>` prefix: debug 7, info 6, warning 4, err 3, crit 2.
int journal_priority(Level level);

struct LineStyle {
  bool json = false;
  bool journald = false;  // `<N>` prefix, no timestamp (the journal stamps each line)
};

// One line, without the trailing newline. `timestamp` is ISO 8601 text (ignored for journald).
std::string render_line(const LineStyle& style, Level level, const std::string& timestamp, const Fields& fields);

// A value from SQL (a tenant id, a sub-merchant id) placed in a message as a bare `key={}`:
// anything that could end the value or start a forged field (space, '"', '=', '\\', control and
// non-ASCII bytes) becomes '?', and it is cut to `max_bytes` with a trailing "...". Such ids are
// plain ASCII when valid; an invalid one stays recognisable without being able to reshape the
// line. The stored value is always available verbatim in the database.
std::string log_token(std::string_view value, std::size_t max_bytes = 64);

// logfmt value: bare when it holds no space, quote, '=', control or non-ASCII byte; otherwise
// quoted with \" \\ \n \r \t and \xHH escapes.
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
