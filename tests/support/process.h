// Running the real binaries (callbackd, callbackd-sandbox) from tests, as an operator would.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace callbackd::test {

struct Child {
  pid_t pid = -1;
  std::string output_path;  // stdout and stderr together
};

// Starts `args[0]` with `args`, the test's environment plus `env` (a value of "" unsets).
Child spawn_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});

// Waits for the child; the exit status, or 128 + signal number.
int wait_exit_status(const Child& child);

struct Finished {
  int exit_status = -1;
  std::string output;
};

// Waits at most `limit`; a child still running then is killed with SIGKILL and -1 returned
// (the caller's test fails on it), so a hung daemon never hangs the suite.
int wait_exit_status_for(const Child& child, std::chrono::milliseconds limit);

// spawn_process + wait_exit_status + the output.
Finished run_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});
// The same with a deadline (wait_exit_status_for).
Finished run_process_for(const std::vector<std::string>& args, std::chrono::milliseconds limit);

std::string read_file(const std::string& path);

// A child owned by a test scope: a failed REQUIRE must not leave a daemon running. The
// destructor SIGKILLs and reaps it if it has not been waited for, and removes its output.
class ScopedChild {
 public:
  explicit ScopedChild(Child child) : child_(std::move(child)) {}
  ~ScopedChild();
  ScopedChild(const ScopedChild&) = delete;
  ScopedChild& operator=(const ScopedChild&) = delete;

  pid_t pid() const { return child_.pid; }
  // Still running (the same process: a child that exited is reaped here and never comes back).
  bool running();
  // Sends `signal`, waits at most `limit` (then SIGKILL): the exit status or 128 + signal,
  // -1 on the timeout.
  int signal_and_wait(int signal, std::chrono::milliseconds limit);
  std::string output() const { return read_file(child_.output_path); }

 private:
  Child child_;
  bool reaped_ = false;
  int exit_status_ = -1;
};

}  // namespace callbackd::test
