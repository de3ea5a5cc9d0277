// The daemon's log events: a name plus typed fields, never a formatted string.
//
//   logging::warn("tenant_paused", {{"tenant", logging::log_id(id)}, {"code", code}, {"reason", reason}});
//
// The fields travel as they are to the process's EventWriter (app/logging.cpp), which bounds,
// redacts, limits repeats and renders the line once (logfmt or JSON, every value escaped). No
// text is ever parsed back into fields, so a value from outside (WeChat Pay's error message,
// an exception text, a row's id) stays one value, whatever quotes, `key=` or newlines it
// holds. Core stays free of spdlog: the writer is installed by the app.
#pragma once

#include <string_view>

#include "core/logging/log_line.h"

namespace callbackd::logging {

// Where events go. write() gets the event's fields with `event` first.
class EventWriter {
 public:
  virtual ~EventWriter() = default;
  virtual bool enabled(Level level) const = 0;
  virtual void write(Level level, Fields fields) = 0;
};

// Installs the process's writer (not owned; it must outlive every event). Until one is
// installed (app::init_logging, the first thing `callbackd run` does) events go nowhere: core
// does no I/O of its own.
void set_writer(EventWriter* writer);

void emit(Level level, std::string_view event, Fields fields);
inline void debug(std::string_view event, Fields fields = {}) { emit(Level::debug, event, std::move(fields)); }
inline void info(std::string_view event, Fields fields = {}) { emit(Level::info, event, std::move(fields)); }
inline void warn(std::string_view event, Fields fields = {}) { emit(Level::warn, event, std::move(fields)); }
inline void error(std::string_view event, Fields fields = {}) { emit(Level::error, event, std::move(fields)); }

}  // namespace callbackd::logging
