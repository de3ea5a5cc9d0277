// Whether another `callbackd run` instance has provably died, so that its tenant leases need
// not lapse before they are taken over (migrations/0005_instance_liveness.sql). Only an
// instance on the same machine can be proven dead: the same kernel boot and the same PID
// namespace, and its pid no longer exists. Everything else waits for the lease.
#pragma once

#include <functional>
#include <string>

namespace callbackd {

// Where a process runs, as recorded in callbackd.instances. Empty strings: unknown (no /proc).
struct ProcessIdentity {
  std::string boot_id;        // /proc/sys/kernel/random/boot_id
  std::string pid_namespace;  // readlink /proc/self/ns/pid, e.g. "pid:[4026531836]"
  long pid = 0;
};

// What kill(pid, 0) said about a pid in our own PID namespace.
enum class PidProbe { alive, gone, unknown };

// Pure: `other` is dead for sure only when it ran in our boot and our PID namespace (so its pid
// names the same process for us) and that pid is gone. A reused pid probes `alive`, which only
// delays the takeover to the lease's lapse; any unknown part means "not provably dead".
bool provably_dead(const ProcessIdentity& self, const ProcessIdentity& other, PidProbe probe);

// --- I/O ----------------------------------------------------------------------------------
// This process, read from /proc (empty parts where it cannot be read).
ProcessIdentity this_process();
// kill(pid, 0): gone on ESRCH, alive on success or EPERM (it exists, owned by someone else),
// unknown otherwise and for pid <= 0 (never signal 0, -1 or a process group).
PidProbe probe_pid(long pid);
// Who answers "does this pid exist?": probe_pid in the daemon, a stand-in in tests.
using PidProber = std::function<PidProbe(long pid)>;

}  // namespace callbackd
