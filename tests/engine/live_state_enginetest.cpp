// Reading back the live value (engine/live_reader.h) with the real run loop in simulated time:
// adoption before a row's first POST, the read pacer apart from the set pacer, and drift checks
// that repair or report a value changed out of band. The fake WeChat Pay holds what it was set
// to (FakeWechatpay::live) and answers reads from it.
#include <catch2/catch.hpp>

#include <algorithm>

#include "engine_harness.h"

using namespace callbackd;
using namespace callbackd::engine_test;
using namespace std::chrono_literals;

namespace {

std::size_t count_requests(const FakeWechatpay& w, bool reads) {
  return static_cast<std::size_t>(std::count_if(w.received().begin(), w.received().end(),
                                                [&](const ReceivedRequest& r) { return r.read == reads; }));
}

std::size_t audited(const MemoryStore& store, const std::string& outcome) {
  return static_cast<std::size_t>(std::count_if(store.audit().begin(), store.audit().end(),
                                                [&](const MemoryStore::Audit& a) { return a.outcome == outcome; }));
}

// The most requests of one kind in any closed window of `width`.
std::size_t max_in_window(const FakeWechatpay& w, bool reads, Duration width) {
  std::vector<Instant> at;
  for (const auto& r : w.received())
    if (r.read == reads) at.push_back(r.at);
  std::size_t best = 0;
  for (std::size_t i = 0, j = 0; i < at.size(); ++i) {
    j = std::max(j, i);
    while (j < at.size() && at[j] - at[i] <= width) ++j;
    best = std::max(best, j - i);
  }
  return best;
}

}  // namespace

TEST_CASE("adoption: rows already set live are adopted without a POST, the others sent", "[engine][live]") {
  Config config = Engine::default_config();
  config.wechatpay.read_rate_per_second = 20;
  Engine e(1, 6000, config);
  e.store.set_live_policy(Engine::tenant_id(0), true);
  for (int r = 0; r < 180; ++r) e.wechatpay.live[Engine::sub_mchid(0, r)] = kNotifyUrl;
  e.wechatpay.live[Engine::sub_mchid(0, 199)] = "https://elsewhere.example.net/";  // set, but not as desired
  e.add_rows(0, 200);
  e.start();
  REQUIRE(e.run_until([&] { return e.store.in_sync() == 200; }, 10min));
  REQUIRE(e.run_for(5s));
  INFO(e.figures());
  CHECK(count_requests(e.wechatpay, true) == 200);  // one read per row
  CHECK(count_requests(e.wechatpay, false) == 20);  // POSTs only for the 20 not set as desired
  CHECK(audited(e.store, "adopted") == 180);
  CHECK(audited(e.store, "applied") == 20);
  CHECK(e.wechatpay.live[Engine::sub_mchid(0, 199)] == kNotifyUrl);
  // The reads kept to their own rate: 20 in any second (10 s of reads at least).
  CHECK(max_in_window(e.wechatpay, true, 1s) <= 20);
  CHECK(e.elapsed() >= 9s);
  CHECK(e.clock.counts.passed_deadlines_fired == 0);
}

TEST_CASE("a 429 on reads slows the read pacer only: sets keep their own pace", "[engine][live]") {
  Config config = Engine::default_config();
  config.wechatpay.read_rate_per_second = 50;
  Engine e(2, 600, config);  // tenant 0 adopts, tenant 1 does not
  e.store.set_live_policy(Engine::tenant_id(0), true);
  const Instant throttle_end = e.clock.now() + 10s;
  e.wechatpay.script = [&](const ReceivedRequest& r) {
    return r.read && r.at < throttle_end ? Answer::rate_limited : Answer::applied;
  };
  e.add_rows(0, 100);
  e.add_rows(1, 100);
  e.start();
  REQUIRE(e.run_until([&] { return e.store.in_sync() == 200; }, 10min));
  INFO(e.figures());
  CHECK(e.wechatpay.count(Answer::rate_limited) > 0);
  // No set call was refused and none slowed: tenant 1's 100 POSTs at 10 a second took 10 s or
  // little more, as without reads.
  CHECK(audited(e.store, "rate_limited") == 0);
  CHECK(audited(e.store, "applied") == 200);
  CHECK(max_in_window(e.wechatpay, false, 1s) <= 2 * 15);
}

TEST_CASE("drift checks: a value changed out of band is found within one interval and repaired", "[engine][live]") {
  Config config = Engine::default_config();
  config.reconciler.drift_check_interval = std::chrono::minutes{1};
  Engine e(1, 6000, config);
  e.add_rows(0, 50);
  e.start();
  REQUIRE(e.run_until([&] { return e.store.in_sync() == 50; }, 1min));
  const auto sets_before = count_requests(e.wechatpay, false);
  for (int r = 0; r < 5; ++r) e.wechatpay.live[Engine::sub_mchid(0, r)] = "https://elsewhere.example.net/";
  REQUIRE(e.run_for(62s));
  INFO(e.figures());
  CHECK(audited(e.store, "drift_detected") == 5);
  CHECK(count_requests(e.wechatpay, false) == sets_before + 5);  // repaired through the set pacer
  CHECK(e.store.in_sync() == 50);
  for (int r = 0; r < 5; ++r) CHECK(e.wechatpay.live[Engine::sub_mchid(0, r)] == kNotifyUrl);
  // Every row was read back once in that interval (50), plus the checks of the rows set again.
  CHECK(count_requests(e.wechatpay, true) >= 50);
  CHECK(count_requests(e.wechatpay, true) <= 60);
}

TEST_CASE("drift checks under drift_policy report: the rows stay drifted, nothing is sent", "[engine][live]") {
  Config config = Engine::default_config();
  config.reconciler.drift_check_interval = std::chrono::minutes{1};
  Engine e(1, 6000, config);
  e.store.set_live_policy(Engine::tenant_id(0), false, "report");
  e.add_rows(0, 50);
  e.start();
  REQUIRE(e.run_until([&] { return e.store.in_sync() == 50; }, 1min));
  const auto sets_before = count_requests(e.wechatpay, false);
  for (int r = 0; r < 5; ++r) e.wechatpay.live[Engine::sub_mchid(0, r)] = "https://elsewhere.example.net/";
  REQUIRE(e.run_for(125s));
  INFO(e.figures());
  CHECK(audited(e.store, "drift_detected") == 5);
  CHECK(count_requests(e.wechatpay, false) == sets_before);
  std::size_t drifted = 0;
  for (const auto& [mchid, st] : e.store.states()) drifted += st.recorded.state == reconcile::RowState::drifted;
  CHECK(drifted == 5);
}
