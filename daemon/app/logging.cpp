#include "app/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace callbackd::app {

void init_logging(const LogConfig& log) {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_logger_mt("callbackd");
    spdlog::set_default_logger(l);
    return l;
  }();
  // Under systemd the journal adds its own timestamp; the `<N>` prefix gives it the priority.
  const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  if (log.format == LogConfig::Format::json)
    logger->set_pattern(std::string(journald ? "" : "") + R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%v"})");
  else
    logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
  logger->set_level(spdlog::level::from_str(log.level));
  logger->flush_on(spdlog::level::info);
}

}  // namespace callbackd::app
