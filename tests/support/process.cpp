#include "support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace callbackd::test {

Child spawn_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  char tmpl[] = "/tmp/callbackd-test-out.XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) throw std::runtime_error("mkstemp failed");

  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq != nullptr) merged[std::string(static_cast<const char*>(*e), eq)] = eq + 1;
  }
  for (const auto& [k, v] : env) {
    if (v.empty())
      merged.erase(k);
    else
      merged[k] = v;
  }
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_copy = args;
  std::vector<char*> argv;
  for (auto& a : arg_copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, 1);
  posix_spawn_file_actions_adddup2(&actions, fd, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  Child child;
  child.output_path = tmpl;
  const int rc = posix_spawn(&child.pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(fd);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
  return child;
}

int wait_exit_status(const Child& child) {
  int status = 0;
  if (waitpid(child.pid, &status, 0) != child.pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int wait_exit_status_for(const Child& child, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  pid_t done = 0;
  while ((done = waitpid(child.pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  if (done == 0) {
    kill(child.pid, SIGKILL);
    waitpid(child.pid, &status, 0);
    return -1;
  }
  if (done != child.pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Finished run_process_for(const std::vector<std::string>& args, std::chrono::milliseconds limit) {
  Child child = spawn_process(args);
  Finished f;
  f.exit_status = wait_exit_status_for(child, limit);
  f.output = read_file(child.output_path);
  unlink(child.output_path.c_str());
  return f;
}

Finished run_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  Child child = spawn_process(args, env);
  Finished f;
  f.exit_status = wait_exit_status(child);
  f.output = read_file(child.output_path);
  unlink(child.output_path.c_str());
  return f;
}

ScopedChild::~ScopedChild() {
  if (child_.pid > 0 && !reaped_) {  // pid > 0: kill(-1, ...) would hit every process we may signal
    kill(child_.pid, SIGKILL);
    int status = 0;
    waitpid(child_.pid, &status, 0);
  }
  if (!child_.output_path.empty()) unlink(child_.output_path.c_str());
}

bool ScopedChild::running() {
  if (reaped_ || child_.pid <= 0) return false;
  int status = 0;
  if (waitpid(child_.pid, &status, WNOHANG) != child_.pid) return true;
  reaped_ = true;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return false;
}

int ScopedChild::signal_and_wait(int signal, std::chrono::milliseconds limit) {
  if (!running()) return exit_status_;
  kill(child_.pid, signal);
  exit_status_ = wait_exit_status_for(child_, limit);  // SIGKILLs and reaps on the timeout
  reaped_ = true;
  return exit_status_;
}

}  // namespace callbackd::test
