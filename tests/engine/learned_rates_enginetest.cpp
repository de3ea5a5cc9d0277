// Rates learned from 429s across a restart (core/reconcile/learned_rates.h,
// engine/learned_rate_keeper.h): the real run loop in simulated time, its store in memory.
#include <catch2/catch.hpp>

#include "engine_harness.h"

using namespace callbackd;
using namespace callbackd::engine_test;
using namespace std::chrono_literals;
using reconcile::LearnedKey;
using reconcile::LearnedScope;

TEST_CASE("a tenant resumes at the rate an earlier run learned, and its row goes once it recovered", "[engine]") {
  constexpr int kRate = 600;
  Engine e(1, kRate);
  // The run before found 60 a minute, 2 minutes ago.
  e.store.put_learned_rate({LearnedScope::tenant, Engine::tenant_id(0), 60.0, 2min});
  e.add_rows(0, 400);
  e.start();
  REQUIRE(e.run_for(10s));
  {
    INFO(e.figures());
    // At ~60 a minute moved 2/60 of the way back to 600 (78), recovering by 5% of 600 every
    // 5 s from the start: far below the 100 that 10 s at 600 would be.
    CHECK(e.wechatpay.received().size() <= 30);
    CHECK(e.wechatpay.received().size() >= 10);
    // Written back as it moves (every 10 s, moves of 1% or more).
    REQUIRE(e.run_for(1s));
    CHECK(e.store.saved_learned_rates().count(LearnedKey{LearnedScope::tenant, Engine::tenant_id(0)}) == 1);
  }
  // Recovered to 600 within 100 s: the row is forgotten.
  REQUIRE(e.run_for(2min));
  INFO(e.figures());
  CHECK(e.store.saved_learned_rates().empty());
}
