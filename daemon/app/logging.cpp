#include "app/logging.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/logging/log_line.h"

namespace callbackd::app {

namespace {

using logging::Fields;
using logging::Level;

Level level_of(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return Level::trace;
    case spdlog::level::debug: return Level::debug;
    case spdlog::level::info: return Level::info;
    case spdlog::level::warn: return Level::warn;
    case spdlog::level::err: return Level::error;
    default: return Level::critical;
  }
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

class LineSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit LineSink(std::function<void(const std::string&)> write) : write_(std::move(write)) {}

  void set_style(logging::LineStyle style) {
    std::lock_guard<std::mutex> lock(mutex_);
    style_ = style;
  }

  void flush_repeats() {
    std::lock_guard<std::mutex> lock(mutex_);
    write_summaries(limiter_.flush(logging::RepeatLimiter::Clock::now()));
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    Fields fields = logging::parse_message(std::string_view(msg.payload.data(), msg.payload.size()));
    logging::redact(fields);
    const auto now = logging::RepeatLimiter::Clock::now();
    write_summaries(limiter_.flush(now));
    const auto verdict = limiter_.admit(logging::RepeatLimiter::key_of(fields), now);
    if (verdict.suppressed_before > 0)
      write_summaries({{logging::RepeatLimiter::key_of(fields), verdict.suppressed_before}});
    if (!verdict.emit) return;
    write_(logging::render_line(style_, level_of(msg.level), iso8601_utc(msg.time), fields));
  }
  void flush_() override {}

 private:
  void write_summaries(const std::vector<std::pair<std::string, std::uint64_t>>& dropped) {
    for (const auto& [key, n] : dropped) {
      // key is "event|tenant|code"
      const auto a = key.find('|');
      const auto b = key.find('|', a + 1);
      Fields f{{"event", "log_repeats_dropped"},
               {"repeated_event", key.substr(0, a)},
               {"tenant", key.substr(a + 1, b - a - 1)},
               {"code", key.substr(b + 1)},
               {"dropped", std::to_string(n)},
               {"note", "the same error was logged more than 10 times in a minute"}};
      write_(logging::render_line(style_, Level::warn, iso8601_utc(std::chrono::system_clock::now()), f));
    }
  }

  std::function<void(const std::string&)> write_;
  logging::LineStyle style_;
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

std::shared_ptr<spdlog::logger> make_line_logger(const LogConfig& log, bool journald,
                                                 std::function<void(const std::string&)> write) {
  auto sink = std::make_shared<LineSink>(std::move(write));
  sink->set_style(style_of(log, journald));
  auto logger = std::make_shared<spdlog::logger>("callbackd-test", sink);
  logger->set_level(spdlog::level::from_str(log.level));
  return logger;
}

void init_logging(const LogConfig& log) {
  static std::shared_ptr<spdlog::logger> logger = [] {
    process_sink() = std::make_shared<LineSink>([](const std::string& line) {
      // One write per line: lines of concurrent threads never interleave.
      const std::string out = line + "\n";
      std::size_t done = 0;
      for (int tries = 0; done < out.size() && tries < 100; ++tries) {
        const ssize_t n = ::write(STDERR_FILENO, out.data() + done, out.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
    });
    auto l = std::make_shared<spdlog::logger>("callbackd", process_sink());
    spdlog::set_default_logger(l);
    return l;
  }();
  process_sink()->set_style(style_of(log, stderr_is_journal()));
  logger->set_level(spdlog::level::from_str(log.level));
}

void flush_log_repeats() {
  if (process_sink()) process_sink()->flush_repeats();
}

}  // namespace callbackd::app
