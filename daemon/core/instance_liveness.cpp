#include "core/instance_liveness.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

namespace callbackd {

bool provably_dead(const ProcessIdentity& self, const ProcessIdentity& other, PidProbe probe) {
  if (self.boot_id.empty() || self.pid_namespace.empty() || other.pid <= 0) return false;
  if (other.boot_id != self.boot_id || other.pid_namespace != self.pid_namespace) return false;
  if (other.pid == self.pid) return false;  // that pid is us: the record is stale, not dead
  return probe == PidProbe::gone;
}

ProcessIdentity this_process() {
  ProcessIdentity p;
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::getline(boot, p.boot_id);
  char link[128] = {};
  const ssize_t n = readlink("/proc/self/ns/pid", link, sizeof link - 1);
  if (n > 0) p.pid_namespace.assign(link, static_cast<std::size_t>(n));
  p.pid = static_cast<long>(getpid());
  return p;
}

PidProbe probe_pid(long pid) {
  if (pid <= 0) return PidProbe::unknown;
  if (kill(static_cast<pid_t>(pid), 0) == 0) return PidProbe::alive;
  if (errno == ESRCH) return PidProbe::gone;
  if (errno == EPERM) return PidProbe::alive;
  return PidProbe::unknown;
}

}  // namespace callbackd
