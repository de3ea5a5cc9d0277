// How many rows one claim takes for a tenant, and how long the claim holds them
// (claim_policy.h).
#include <catch2/catch.hpp>

#include "core/reconcile/claim_policy.h"

using namespace callbackd::reconcile;
using namespace std::chrono_literals;

TEST_CASE("claim policy: about two seconds of sending per claim, 1 to 200 rows", "[claim_policy]") {
  struct Row {
    double rate_per_minute;
    int batch;
  };
  for (const auto& r : std::vector<Row>{{0, 1},        // a pacer at a standstill still probes one
                                        {29.9, 1},     // below one row per two seconds
                                        {60, 2},       // one a second: two rows
                                        {1'000, 33},   // rounds down
                                        {6'000, 200},  // exactly the cap
                                        {60'000, 200}}) {
    INFO("rate_per_minute " << r.rate_per_minute);
    CHECK(claim_batch(r.rate_per_minute) == r.batch);
  }
}

TEST_CASE("claim policy: the rows' lease outlives the buffer, a request, and the tenant lease", "[claim_policy]") {
  struct Row {
    const char* situation;
    std::chrono::milliseconds request_timeout;
    Duration tenant_lease;
    std::chrono::milliseconds lease;
  };
  for (const auto& r :
       std::vector<Row>{{"defaults: the 30 s floor", 5s, 19s, 30s},
                        {"long requests: three request timeouts", 15s, 25s, 45s},
                        {"a long tenant lease wins", 10s, 39s, 39s},
                        {"a tenant lease in fractions of a millisecond rounds up", 1s, 40'000'001us, 40'001ms}}) {
    INFO(r.situation);
    CHECK(claim_lease(r.request_timeout, r.tenant_lease) == r.lease);
  }
}

TEST_CASE("claim policy: a claimed row is dispatched no later than its lease less the send margin", "[claim_policy]") {
  using namespace std::chrono_literals;
  const Instant asked{std::chrono::seconds{1000}};
  // The default lease (30 s) and a margin of 27 s (connect_timeout 10 s, request_timeout 5 s):
  // three seconds to dispatch; a request then still ends before the lease can lapse.
  CHECK(claim_send_by(asked, 30'000ms, 27s) == asked + 3s);
  CHECK(claim_send_by(asked, 35'000ms, 7s) == asked + 28s);
}
