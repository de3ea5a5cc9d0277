// Which tenants the run loop looks at on a turn (attention.h).
#include <catch2/catch.hpp>

#include "core/reconcile/attention.h"
#include "reconcile_test_support.h"

using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;

namespace {
const Instant now = kStart;
using Ids = std::vector<std::string>;
}  // namespace

TEST_CASE("attention: awake tenants are looked at until they sleep; a sleep ends at its instant or when woken",
          "[attention]") {
  Attention a;
  CHECK(a.awake_at(now).empty());
  CHECK_FALSE(a.next_wake());

  a.wake("t2");
  a.wake("t1");
  a.wake("t1");  // twice is once
  CHECK(a.awake_at(now) == Ids{"t1", "t2"});

  a.sleep("t1", now + 5s);
  a.sleep("t2", std::nullopt);
  CHECK(a.awake_at(now) == Ids{});
  CHECK(a.next_wake() == now + 5s);
  CHECK(a.awake_at(now + 4s) == Ids{});
  CHECK(a.awake_at(now + 5s) == Ids{"t1"});  // its instant came
  CHECK_FALSE(a.next_wake());
  CHECK(a.awake_at(now + 1h) == Ids{"t1"});  // awake until it sleeps again; t2 only by an event

  a.wake("t2");
  CHECK(a.is_awake("t2"));
  CHECK(a.awake_count() == 2);
}

TEST_CASE("attention: a newer sleep replaces the older one, and a woken or forgotten tenant's sleep is gone",
          "[attention]") {
  Attention a;
  a.sleep("t1", now + 5s);
  a.sleep("t1", now + 9s);  // the latest word counts, earlier or later
  CHECK(a.next_wake() == now + 9s);
  CHECK(a.awake_at(now + 5s).empty());
  a.sleep("t1", now + 2s);
  CHECK(a.next_wake() == now + 2s);

  a.wake("t1");  // woken early: the sleep is cancelled, not fired again later
  CHECK_FALSE(a.next_wake());
  a.sleep("t1", std::nullopt);
  CHECK(a.awake_at(now + 1h).empty());

  a.sleep("t2", now + 1s);
  a.wake("t3");
  a.forget("t2");
  a.forget("t3");
  a.forget("never-seen");
  CHECK_FALSE(a.next_wake());
  CHECK(a.awake_at(now + 1h).empty());
}

TEST_CASE("attention: many tenants asleep until the same instant all wake together", "[attention]") {
  Attention a;
  for (int i = 0; i < 1000; ++i) a.sleep("t" + std::to_string(i), now + 3s);
  a.sleep("late", now + 4s);
  CHECK(a.awake_at(now + 3s).size() == 1000);
  CHECK(a.next_wake() == now + 4s);
}
