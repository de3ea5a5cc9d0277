// Process-wide logging set-up (spdlog). The daemon's messages are written as
// `event=name key=value key="text"`; a sink of our own (not a spdlog pattern) turns each one
// into fields and writes one line per message, logfmt or JSON per log.format, escaped so that
// any bytes in the text (quotes, newlines, invalid UTF-8 from the network) keep the line one
// valid record. Under systemd (JOURNAL_STREAM names our stderr) lines start with journald's
// `<N>` priority and carry no timestamp.
//
// Secrets never reach a line: every message passes through logging::redact (Authorization
// and Wechatpay-Signature headers, signatures, PEM private keys, passwords) before rendering.
// The same error repeating (event + tenant + code) is written at most 10 times a minute;
// then one summary line says how many were dropped.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/config.h"

namespace spdlog {
class logger;
}

namespace callbackd::app {

// Installs the stderr logger with `log.level` and `log.format`. Safe to call again (SIGHUP):
// level and format change in place.
void init_logging(const LogConfig& log);

// Writes summaries of dropped repeats whose minute is over (the daemon calls this about once
// a second, so that a summary is not held back until the next line).
void flush_log_repeats();

// The same sink writing each line (without '\n') to `write`: for tests.
std::shared_ptr<spdlog::logger> make_line_logger(const LogConfig& log, bool journald,
                                                 std::function<void(const std::string&)> write);

// True when JOURNAL_STREAM is set and names the device:inode of our stderr.
bool stderr_is_journal();

}  // namespace callbackd::app
