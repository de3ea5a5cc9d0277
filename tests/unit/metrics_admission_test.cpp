// The operations endpoint's connection admission (core/metrics/admission.h), table-driven: a
// newcomer (a health check) always gets in while some connection only waits, one address
// cannot push out the others, and nothing exceeds the limits.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/metrics/admission.h"

using callbackd::metrics::ConnectionAdmission;

namespace {
struct Step {
  char op;  // 'a' admit, 'b' busy, 'w' waiting, 'c' closed
  ConnectionAdmission::Id id;
  std::string address;  // for 'a'
  bool accept;          // for 'a': expected
  long evict;           // for 'a': expected evicted id, -1 none
};
}  // namespace

TEST_CASE("admission: the longest-waiting connection makes room, per address first", "[metrics][admission]") {
  const struct {
    const char* what;
    std::vector<Step> steps;
  } cases[] = {
      {"under the limits nothing is evicted",
       {{'a', 1, "A", true, -1}, {'a', 2, "A", true, -1}, {'a', 3, "B", true, -1}}},
      {"an address at its limit (2) evicts its own oldest waiting connection",
       {{'a', 1, "A", true, -1},
        {'a', 2, "A", true, -1},
        {'a', 3, "B", true, -1},
        {'a', 4, "A", true, 1},
        {'a', 5, "A", true, 2}}},
      {"a busy connection is not evicted; the next oldest waiting one is",
       {{'a', 1, "A", true, -1}, {'a', 2, "A", true, -1}, {'b', 1, "", false, -1}, {'a', 3, "A", true, 2}}},
      {"waiting again restarts the wait: the one waiting longest goes",
       {{'a', 1, "A", true, -1},
        {'a', 2, "A", true, -1},
        {'b', 1, "", false, -1},
        {'w', 1, "", false, -1},
        {'a', 3, "A", true, 2}}},
      {"all of an address's connections busy: its newcomer is refused",
       {{'a', 1, "A", true, -1},
        {'a', 2, "A", true, -1},
        {'b', 1, "", false, -1},
        {'b', 2, "", false, -1},
        {'a', 3, "A", false, -1},
        {'a', 4, "B", true, -1}}},
      {"the total limit (4) evicts the oldest waiting connection of any address",
       {{'a', 1, "A", true, -1},
        {'a', 2, "B", true, -1},
        {'a', 3, "C", true, -1},
        {'a', 4, "D", true, -1},
        {'a', 5, "E", true, 1},
        {'a', 6, "F", true, 2}}},
      {"every connection busy: refused, and room again once one closes",
       {{'a', 1, "A", true, -1},
        {'a', 2, "B", true, -1},
        {'a', 3, "C", true, -1},
        {'a', 4, "D", true, -1},
        {'b', 1, "", false, -1},
        {'b', 2, "", false, -1},
        {'b', 3, "", false, -1},
        {'b', 4, "", false, -1},
        {'a', 5, "E", false, -1},
        {'c', 3, "", false, -1},
        {'a', 6, "E", true, -1}}},
      {"closing an evicted connection later changes nothing",
       {{'a', 1, "A", true, -1},
        {'a', 2, "A", true, -1},
        {'a', 3, "A", true, 1},
        {'c', 1, "", false, -1},
        {'a', 4, "A", true, 2}}},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    ConnectionAdmission admission(4, 2);
    for (const auto& s : c.steps) {
      CAPTURE(s.op, s.id);
      switch (s.op) {
        case 'a': {
          const auto d = admission.admit(s.id, s.address);
          CHECK(d.accept == s.accept);
          CHECK(d.evict.has_value() == (s.evict >= 0));
          if (d.evict && s.evict >= 0) CHECK(*d.evict == static_cast<ConnectionAdmission::Id>(s.evict));
          break;
        }
        case 'b':
          admission.busy(s.id);
          break;
        case 'w':
          admission.waiting(s.id);
          break;
        case 'c':
          admission.closed(s.id);
          break;
      }
      CHECK(admission.open() <= 4);
    }
  }
}

TEST_CASE("admission: a flood of idle connections from one address leaves the others theirs", "[metrics][admission]") {
  ConnectionAdmission admission(32, 8);
  for (ConnectionAdmission::Id id = 0; id < 4; ++id) REQUIRE(admission.admit(id, "10.0.0.2").accept);
  for (ConnectionAdmission::Id id = 100; id < 1100; ++id) {
    const auto d = admission.admit(id, "127.0.0.1");
    REQUIRE(d.accept);
    REQUIRE(admission.open_from("127.0.0.1") <= 8);
  }
  CHECK(admission.open_from("10.0.0.2") == 4);
  CHECK(admission.open() == 12);
}
