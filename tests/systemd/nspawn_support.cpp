#include "systemd/nspawn_support.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>
#include <stdexcept>
#include <thread>

namespace callbackd::test::nspawn {

namespace fs = std::filesystem;

std::optional<std::string> why_nspawn_cannot_run() {
  if (geteuid() != 0) return "not running as root (systemd-nspawn boots a container only as root)";
  for (const char* dir : {"/usr/bin", "/bin", "/usr/sbin"})
    if (access((std::string(dir) + "/systemd-nspawn").c_str(), X_OK) == 0) return std::nullopt;
  return "systemd-nspawn not found (Debian package systemd-container; ./scripts/setup installs it)";
}

void install_file(const std::string& from, const std::string& to, fs::perms mode) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, mode, fs::perm_options::replace);
}

void make_dir(const std::string& path, fs::perms mode) {
  fs::create_directories(path);
  fs::permissions(path, mode, fs::perm_options::replace);
}

std::string tail(const std::string& text, std::size_t bytes) {
  return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

std::map<std::string, std::string> read_steps(const std::string& path) {
  std::map<std::string, std::string> steps;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);)
    if (const auto eq = line.find('='); eq != std::string::npos) steps[line.substr(0, eq)] = line.substr(eq + 1);
  return steps;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + ".XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl + " failed");
  return tmpl;
}

namespace {
// Processes whose parent is `pid` (the container's init is systemd-nspawn's child).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(entry.path() / "stat");
    const auto paren = stat.rfind(')');  // the command name may hold spaces and parentheses
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    std::string state;
    pid_t parent = 0;
    if (fields >> state >> parent && parent == pid) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}
}  // namespace

Container::Container(const std::vector<std::string>& args) : child_(spawn_process(args)) {}

Container::~Container() {
  if (!reaped_) stop();
  unlink(child_.output_path.c_str());
}

int Container::wait_for(std::chrono::seconds limit) {
  if (const auto status = wait_until_exit(limit)) return *status;
  stop();
  return -1;
}

std::string Container::console() const { return read_file(child_.output_path); }

std::optional<int> Container::wait_until_exit(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(child_.pid, &status, WNOHANG);
    if (done == child_.pid || done < 0) {
      reaped_ = true;
      return done < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
}

// SIGTERM makes systemd-nspawn ask the container's systemd to power off. Killing
// systemd-nspawn alone would leave the container running (its init is re-parented), so after
// 30 s the container's init is killed (which ends every process of its PID namespace), then
// systemd-nspawn.
void Container::stop() {
  if (child_.pid <= 0) return;  // never kill(-1, ...)
  kill(child_.pid, SIGTERM);
  if (wait_until_exit(std::chrono::seconds{30})) return;
  for (const pid_t init : children_of(child_.pid)) kill(init, SIGKILL);
  kill(child_.pid, SIGKILL);
  wait_until_exit(std::chrono::seconds{30});
}

}  // namespace callbackd::test::nspawn
