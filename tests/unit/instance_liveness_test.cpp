// Proving another instance dead (migrations/0005): only the same boot, the same PID namespace
// and a pid that is gone; anything unknown or different is "not provably dead".
#include <catch2/catch.hpp>

#include <unistd.h>

#include "core/instance_liveness.h"

using namespace callbackd;

TEST_CASE("an instance is provably dead only in our boot and PID namespace with its pid gone", "[liveness]") {
  const ProcessIdentity self{"boot-1", "pid:[4026531836]", 100};
  const ProcessIdentity other{"boot-1", "pid:[4026531836]", 200};
  CHECK(provably_dead(self, other, PidProbe::gone));
  CHECK_FALSE(provably_dead(self, other, PidProbe::alive));  // running, or its pid was reused
  CHECK_FALSE(provably_dead(self, other, PidProbe::unknown));
  CHECK_FALSE(provably_dead(self, {"boot-2", other.pid_namespace, 200}, PidProbe::gone));      // rebooted or other host
  CHECK_FALSE(provably_dead(self, {other.boot_id, "pid:[4026532000]", 200}, PidProbe::gone));  // another container
  CHECK_FALSE(provably_dead(self, {other.boot_id, other.pid_namespace, 100}, PidProbe::gone));  // our own pid
  CHECK_FALSE(provably_dead(self, {other.boot_id, other.pid_namespace, 0}, PidProbe::gone));
  CHECK_FALSE(provably_dead({"", "", 100}, {"", "", 200}, PidProbe::gone));  // no /proc: nothing is known
}

TEST_CASE("this process is identified from /proc, and probing pids never signals a group", "[liveness]") {
  const ProcessIdentity me = this_process();
  CHECK(me.pid == static_cast<long>(getpid()));
  CHECK(me.boot_id.size() == 36);  // a UUID
  CHECK(me.pid_namespace.starts_with("pid:["));
  CHECK(probe_pid(me.pid) == PidProbe::alive);
  CHECK(probe_pid(0) == PidProbe::unknown);
  CHECK(probe_pid(-1) == PidProbe::unknown);
}
