// What an instance does with the tenants a heartbeat says it holds (ownership_policy.h).
#include <catch2/catch.hpp>

#include "core/reconcile/ownership_policy.h"
#include "core/reconcile/pacer.h"
#include "reconcile_test_support.h"

using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;

TEST_CASE("ownership: shares beyond the fair share are handed over", "[ownership_policy]") {
  using Keys = std::vector<ShareKey>;
  struct Row {
    const char* situation;
    std::vector<HeldShare> held;
    int fair_share;
    Keys hand_over;
  };
  for (const auto& r : std::vector<Row>{
           {"within the share", {{"a", 0, false}, {"b", 0, false}}, 2, {}},
           {"one over: the last in the heartbeat's order",
            {{"a", 0, false}, {"b", 0, false}, {"c", 0, false}},
            2,
            {{"c", 0}}},
           {"all over a share of one", {{"a", 0, false}, {"b", 0, false}, {"c", 0, false}}, 1, {{"b", 0}, {"c", 0}}},
           {"already handing over: not counted, not repeated",
            {{"a", 0, true}, {"b", 0, false}, {"c", 0, false}},
            2,
            {}},
           {"already handing over in the middle",
            {{"a", 0, false}, {"b", 0, true}, {"c", 0, false}, {"d", 0, false}},
            2,
            {{"d", 0}}},
           {"one big tenant's shares: the last ones go, the tenant keeps sending at the rest",
            {{"a", 0, false}, {"a", 1, false}, {"a", 2, false}, {"a", 3, false}},
            2,
            {{"a", 2}, {"a", 3}}},
           {"a share of zero (no tenants by the database's count)", {{"a", 0, false}}, 0, {{"a", 0}}},
           {"nothing held", {}, 3, {}}}) {
    INFO(r.situation);
    CHECK(shares_to_hand_over(r.held, r.fair_share) == r.hand_over);
  }
}

TEST_CASE("ownership: a tenant taken over counts the previous owner's sends, and max_in_flight more",
          "[ownership_policy]") {
  const Instant now = kStart;
  using std::chrono::milliseconds;
  struct Row {
    const char* situation;
    std::vector<milliseconds> recent_sends;
    int max_in_flight;
    std::vector<Instant> sends;
  };
  for (const auto& r : std::vector<Row>{{"no recent sends: nothing assumed, not even in flight", {}, 4, {}},
                                        {"recent sends plus as many in flight as allowed",
                                         {milliseconds{500}, milliseconds{59'000}},
                                         2,
                                         {now - 500ms, now - 59s, now, now}},
                                        {"max_in_flight 1", {milliseconds{0}}, 1, {now, now}}}) {
    INFO(r.situation);
    CHECK(assumed_sends_after_takeover(r.recent_sends, r.max_in_flight, now) == r.sends);
  }
}

TEST_CASE("ownership: a renewal extends sending only when the epoch is the one known", "[ownership_policy]") {
  struct Row {
    const char* situation;
    std::optional<std::int64_t> previous;
    std::int64_t epoch;
    bool holds_earlier_leases;
    bool confirms;
  };
  for (const auto& r : std::vector<Row>{
           {"first answer of a new instance: nothing held before it", std::nullopt, 7, false, true},
           {"no answer known, but leases from before it (an earlier answer was lost after it committed)", std::nullopt,
            7, true, false},
           {"same epoch: nobody fenced us", 7, 7, true, true},
           {"changed: another instance fenced us to take tenants over", 7, 9, true, false},
           {"changed, holding nothing from before", 7, 9, false, false},
           {"our row was forgotten and created again (a new epoch from the sequence)", 7, 12, true, false}}) {
    INFO(r.situation);
    CHECK(renewal_confirms_holding(r.previous, r.epoch, r.holds_earlier_leases) == r.confirms);
  }
}

TEST_CASE("rate shares: one per 40 a minute, 1 to 8, adding up to the rate, each 1-second limit adding up too",
          "[ownership_policy][shares]") {
  const std::vector<std::pair<int, int>> counts = {{1, 1},   {39, 1},  {79, 1},  {80, 2},   {119, 2}, {120, 3},
                                                   {200, 5}, {319, 7}, {320, 8}, {1000, 8}, {6000, 8}};
  for (const auto& [rate, shares] : counts) {
    INFO("R = " << rate);
    CHECK(rate_shares(rate) == shares);
  }
  CHECK(share_rate(170, 0) == 43);
  CHECK(share_rate(170, 1) == 43);
  CHECK(share_rate(170, 2) == 42);
  CHECK(share_rate(170, 3) == 42);
  CHECK(share_rate(170, 4) == 0);  // beyond the count: to be given up
  CHECK(share_rate(170, -1) == 0);
  for (int rate = 1; rate <= 20'000; ++rate) {
    int sum = 0;
    int one_second_sum = 0;
    for (int share = 0; share < rate_shares(rate); ++share) {
      sum += share_rate(rate, share);
      one_second_sum += one_second_limit(share_rate(rate, share));
    }
    INFO("R = " << rate);
    REQUIRE(sum == rate);
    // What makes shares safe against WeChat Pay's 1-second window (pacer.h).
    REQUIRE(one_second_sum <= one_second_limit(rate));
  }
}
