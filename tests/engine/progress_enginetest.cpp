// `run`'s progress table counts rows from the daemon's own state (core/progress/row_tally.h):
// the counts read at start plus every row move the reconciler reports. Here the real run loop,
// in simulated time, with retries and 429s: the moves must bring the counts exactly to the
// states the store holds, or the table would drift from sync_status during a long run.
#include <catch2/catch.hpp>

#include <map>

#include "engine_harness.h"

using namespace callbackd;
using namespace callbackd::engine_test;
using namespace std::chrono_literals;

TEST_CASE("progress: the run's own row counts end where the store's states are", "[engine][progress]") {
  // Retries (a 500 on the first try of every 5th row), 429s for a while, two tenants: every
  // move the reconciler reports, applied to the counts read at start, gives the states the
  // store holds (what `run`'s progress table shows without querying).
  constexpr int kRows = 120;
  Engine e(2, 600);
  const Instant throttle_end = e.clock.now() + 20s;
  std::map<std::string, int> tries;
  e.wechatpay.script = [&](const ReceivedRequest& r) {
    if (tries[r.sub_mchid]++ == 0 && (r.sub_mchid.back() - '0') % 5 == 0) return Answer::server_error;
    return r.at < throttle_end && r.sub_mchid.back() == '7' ? Answer::rate_limited : Answer::applied;
  };
  e.add_rows(0, kRows);
  e.add_rows(1, kRows / 2);
  e.row_moves.set_baseline(Engine::tenant_id(0), {{"pending", kRows}});
  e.row_moves.set_baseline(Engine::tenant_id(1), {{"pending", kRows / 2}});
  e.start();
  REQUIRE(e.run_until([&] { return e.store.in_sync() == kRows + kRows / 2; }, 10min));
  REQUIRE(e.run_for(5s));  // the last records written
  INFO(e.figures());
  CHECK(e.wechatpay.count(Answer::server_error) > 0);
  CHECK(e.wechatpay.count(Answer::rate_limited) > 0);
  std::map<std::string, progress::RowTally::Counts> stored;
  for (const auto& [sub_mchid, state] : e.store.states())
    ++stored[state.tenant_id][std::string(reconcile::row_state_name(state.recorded.state))];
  for (const auto& [tenant, counts] : e.row_moves.all()) {
    CAPTURE(tenant);
    progress::RowTally::Counts nonzero;
    for (const auto& [state, n] : counts)
      if (n != 0) nonzero[state] = n;
    CHECK(nonzero == stored[tenant]);
  }
  CHECK(e.row_moves.counts(Engine::tenant_id(0)).at("in_sync") == kRows);
}
