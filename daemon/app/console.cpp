#include "app/console.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include "core/progress/progress_table.h"

namespace callbackd::app {

Console& Console::stderr_console() {
  static Console console(STDERR_FILENO);
  return console;
}

bool Console::is_terminal() const { return ::isatty(fd_) == 1; }

TerminalSize Console::size() const {
  TerminalSize size;
  struct winsize ws {};
  if (::ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    size.columns = ws.ws_col;
    size.rows = ws.ws_row;
  }
  return size;
}

void Console::write_line(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (table_.empty()) {
    write_all(line + "\n");
    return;
  }
  write_all(progress::redraw(table_.size(), {line}, table_));
}

void Console::show_table(const std::vector<std::string>& lines) {
  std::lock_guard<std::mutex> lock(mutex_);
  write_all(progress::redraw(table_.size(), {}, lines));
  table_ = lines;
}

void Console::release_table() {
  std::lock_guard<std::mutex> lock(mutex_);
  table_.clear();
}

// mutex_ held. One write per call where the kernel takes it whole (a terminal or pipe does);
// a short write is continued, a failing one given up (there is nowhere to report it).
void Console::write_all(const std::string& bytes) {
  std::size_t done = 0;
  for (int tries = 0; done < bytes.size() && tries < 100; ++tries) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace callbackd::app
