// Process-wide logging set-up. The daemon logs events (core/logging/event.h: a name plus
// typed fields); a writer of our own bounds and redacts the values and writes one line per
// event, logfmt or JSON per log.format, every value escaped, so that any bytes in a value
// (quotes, `key=`, newlines, invalid UTF-8 from the network) stay inside that value and the
// line stays one valid record. Under systemd (JOURNAL_STREAM names our stderr) lines start
// with journald's `<N>` priority and carry no timestamp.
//
// spdlog's default logger writes through the same writer: text that any code passes to
// spdlog becomes one record whose whole text is the one field `msg` (never parsed into
// fields).
//
// Secrets never reach a line: every text value passes through logging::redact (Authorization
// and Wechatpay-Signature headers, signatures, PEM private keys, passwords) before rendering.
// The same error repeating (event + tenant + code) is written at most 10 times a minute;
// then one summary line says how many were dropped.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/logging/event.h"

namespace spdlog {
class logger;
}

namespace callbackd::app {

// Installs the stderr writer with `log.level` and `log.format` (for events and for spdlog).
// Safe to call again (SIGHUP): level and format change in place.
void init_logging(const LogConfig& log);

// Writes summaries of dropped repeats whose minute is over (the daemon calls this about once
// a second, so that a summary is not held back until the next line).
void flush_log_repeats();

// The same writer, writing each line (without '\n') to `write`: for tests. `events` takes
// events (logging::set_writer(events.get()) routes logging::info & co. to it), `text` is a
// spdlog logger on the same writer, as third-party text would arrive.
struct LineLogger {
  std::shared_ptr<logging::EventWriter> events;
  std::shared_ptr<spdlog::logger> text;
};
LineLogger make_line_logger(const LogConfig& log, bool journald, std::function<void(const std::string&)> write);

// True when JOURNAL_STREAM is set and names the device:inode of our stderr.
bool stderr_is_journal();

}  // namespace callbackd::app
