// A terminal stream (stderr for `run`, stdout for `status --watch`) shared by log lines and a
// live table at its bottom (core/progress/progress_table.h). Log lines scroll above the table
// and never tear it: each write erases the table, writes the lines and draws the table again,
// in ONE write(2) under one mutex, so that lines of concurrent threads never interleave with
// it. Without a table a log line is written exactly as before: the line and "\n", no control
// characters.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace callbackd::app {

struct TerminalSize {
  std::size_t columns = 80;
  std::size_t rows = 24;
};

class Console {
 public:
  explicit Console(int fd) : fd_(fd) {}
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // The process's stderr, as app/logging.cpp writes to it.
  static Console& stderr_console();

  bool is_terminal() const;
  // The terminal's size (80x24 when it has none, e.g. --progress=always into a file).
  TerminalSize size() const;

  // One log line (without '\n'), above the table if one is shown.
  void write_line(const std::string& line);
  // Replaces the table at the bottom (lines without '\n', not wider than the terminal).
  void show_table(const std::vector<std::string>& lines);
  // Leaves the table where it is, as ordinary text: later lines go below it (exit).
  void release_table();

 private:
  void write_all(const std::string& bytes);

  int fd_;
  std::mutex mutex_;
  std::vector<std::string> table_;  // shown while not empty
};

}  // namespace callbackd::app
