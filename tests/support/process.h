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

}  // namespace callbackd::test
