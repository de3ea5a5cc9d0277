#include "core/logging/event.h"

#include <atomic>

namespace callbackd::logging {

namespace {
std::atomic<EventWriter*> current{nullptr};
}  // namespace

void set_writer(EventWriter* writer) { current.store(writer); }

void emit(Level level, std::string_view event, Fields fields) {
  EventWriter* writer = current.load();
  if (writer == nullptr || !writer->enabled(level)) return;
  fields.insert(fields.begin(), Field{"event", event});
  writer->write(level, std::move(fields));
}

}  // namespace callbackd::logging
