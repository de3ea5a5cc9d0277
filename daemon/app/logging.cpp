#include "app/logging.h"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "app/console.h"
#include "core/logging/event.h"

namespace callbackd::app {

namespace {

using logging::Fields;
using logging::Level;

Level level_of(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return Level::trace;
    case spdlog::level::debug:
      return Level::debug;
    case spdlog::level::info:
      return Level::info;
    case spdlog::level::warn:
      return Level::warn;
    case spdlog::level::err:
      return Level::error;
    default:
      return Level::critical;
  }
}

// log.level as a threshold on Level (the same order as spdlog's levels; "off" is above all).
int threshold_of(const LogConfig& log) { return static_cast<int>(spdlog::level::from_str(log.level)); }

class LineSink final : public spdlog::sinks::base_sink<std::mutex>, public logging::EventWriter {
 public:
  explicit LineSink(std::function<void(const std::string&)> write) : write_(std::move(write)) {}

  void configure(logging::LineStyle style, int threshold) {
    std::lock_guard<std::mutex> lock(mutex_);
    style_ = style;
    threshold_ = threshold;
  }

  void flush_repeats() {
    std::lock_guard<std::mutex> lock(mutex_);
    write_summaries(limiter_.flush(logging::RepeatLimiter::Clock::now()));
  }

  bool enabled(Level level) const override { return static_cast<int>(level) >= threshold_.load(); }

  void write(Level level, Fields fields) override {
    std::lock_guard<std::mutex> lock(mutex_);
    write_locked(level, std::chrono::system_clock::now(), std::move(fields));
  }

 protected:
  // Text handed to spdlog (by code that does not log events): one record, the text one value.
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    write_locked(level_of(msg.level), msg.time, Fields{{"msg", text}});
  }
  void flush_() override {}

 private:
  // mutex_ held.
  void write_locked(Level level, std::chrono::system_clock::time_point time, Fields fields) {
    // Bound first: the limiter keeps keys made of these values, and redaction scans them.
    logging::bound(fields);
    logging::redact(fields);
    const auto now = logging::RepeatLimiter::Clock::now();
    write_summaries(limiter_.flush(now));
    const std::string key = logging::RepeatLimiter::key_of(fields);
    const auto verdict = limiter_.admit(key, now);
    if (verdict.suppressed_before > 0) write_summaries({{key, verdict.suppressed_before}});
    if (!verdict.emit) return;
    write_(logging::render_line(style_, level, logging::iso8601_utc(time), fields));
  }

  void write_summaries(const std::vector<std::pair<std::string, std::uint64_t>>& dropped) {
    for (const auto& [key, n] : dropped) {
      // key is "event|tenant|code"
      const auto a = key.find('|');
      const auto b = key.find('|', a + 1);
      Fields f{{"event", "log_repeats_dropped"},
               {"repeated_event", key.substr(0, a)},
               {"tenant", key.substr(a + 1, b - a - 1)},
               {"code", key.substr(b + 1)},
               {"dropped", n},
               {"note", "the same error was logged more than 10 times in a minute"}};
      write_(logging::render_line(style_, Level::warn, logging::iso8601_utc(std::chrono::system_clock::now()), f));
    }
  }

  std::function<void(const std::string&)> write_;
  logging::LineStyle style_;
  std::atomic<int> threshold_{static_cast<int>(Level::info)};
  logging::RepeatLimiter limiter_;
};

logging::LineStyle style_of(const LogConfig& log, bool journald) {
  return logging::LineStyle{log.format == LogConfig::Format::json, journald};
}

std::shared_ptr<LineSink>& process_sink() {
  static std::shared_ptr<LineSink> sink;
  return sink;
}

}  // namespace

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

LineLogger make_line_logger(const LogConfig& log, bool journald, std::function<void(const std::string&)> write) {
  auto sink = std::make_shared<LineSink>(std::move(write));
  sink->configure(style_of(log, journald), threshold_of(log));
  auto logger = std::make_shared<spdlog::logger>("callbackd-test", sink);
  logger->set_level(spdlog::level::from_str(log.level));
  return LineLogger{sink, logger};
}

void init_logging(const LogConfig& log) {
  static std::shared_ptr<spdlog::logger> logger = [] {
    // Through the console: one write per line, so that lines of concurrent threads never
    // interleave, and above `run`'s progress table when one is drawn (app/console.h).
    process_sink() =
        std::make_shared<LineSink>([](const std::string& line) { Console::stderr_console().write_line(line); });
    logging::set_writer(process_sink().get());
    auto l = std::make_shared<spdlog::logger>("callbackd", process_sink());
    spdlog::set_default_logger(l);
    return l;
  }();
  process_sink()->configure(style_of(log, stderr_is_journal()), threshold_of(log));
  logger->set_level(spdlog::level::from_str(log.level));
}

void flush_log_repeats() {
  if (process_sink()) process_sink()->flush_repeats();
}

}  // namespace callbackd::app
