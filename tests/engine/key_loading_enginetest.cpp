// Tenants' keys load off the run loop (engine/key_loader.h): here the loads are held and let
// go by the test, in simulated time. A tenant whose keys are still loading sends nothing and
// is not paused; the others send meanwhile; an answer for a row that changed since is dropped
// in favour of the newer load; keys that fail to load still pause their tenant
// (CREDENTIALS_INVALID) and keys that load lift that pause.
#include <catch2/catch.hpp>

#include "engine_harness.h"

using namespace callbackd;
using namespace callbackd::engine_test;
using namespace std::chrono_literals;

namespace {

std::size_t requests_for(const Engine& e, int tenant) {
  const std::string caller = std::to_string(1'900'000'000LL + tenant);  // the harness's caller mchids
  std::size_t n = 0;
  for (const auto& r : e.wechatpay.received()) n += r.caller_mchid == caller;
  return n;
}

}  // namespace

TEST_CASE("keys loading: the tenant does not send and is not paused; loaded tenants send meanwhile", "[engine]") {
  Engine e(2);
  e.hold_key_loads = true;
  e.add_rows(0, 20);
  e.add_rows(1, 20);
  e.start();
  REQUIRE(e.run_for(30s));
  INFO(e.figures());
  REQUIRE(e.held_key_loads.size() == 2);  // one per tenant (a lease acquired re-reads the rows, not the keys)
  CHECK(e.wechatpay.received().empty());
  CHECK(e.store.pauses().empty());

  e.release_key_loads(1);  // t0000's keys (the tenants are read in id order); t0001's still load
  REQUIRE(e.run_for(30s));
  CHECK(e.store.in_sync("t0000") == 20);
  CHECK(requests_for(e, 1) == 0);
  CHECK(e.store.pauses().empty());

  e.release_key_loads();
  REQUIRE(e.run_until([&] { return e.store.in_sync() == 40; }, 1min));
  CHECK(e.store.in_sync("t0001") == 20);
  CHECK(e.store.pauses().empty());
  CHECK(e.wechatpay.received().size() == 40);  // one request per row
}

TEST_CASE("keys loading: a row changed meanwhile: the newer load wins over the stale answer", "[engine]") {
  Engine e(1);
  e.store.tenant("t0000")->private_key_path = "missing.pem";  // would pause it (CREDENTIALS_INVALID)
  e.hold_key_loads = true;
  e.add_rows(0, 10);
  e.start();
  REQUIRE(e.run_for(10s));
  REQUIRE(e.held_key_loads.size() == 1);
  // The operator fixes the path while the first load is still out.
  e.store.tenant("t0000")->private_key_path = "merchant_key.pem";
  e.reconciler->on_notification("callbackd_tenants", "");
  REQUIRE(e.run_for(1s));
  REQUIRE(e.held_key_loads.size() == 2);
  SECTION("the stale answer (missing.pem) first: dropped, since a newer load is under way") {
    e.release_key_loads(1);
    REQUIRE(e.run_for(1s));
    CHECK(e.wechatpay.received().empty());  // still waiting for the newer load
    CHECK(e.store.pauses().empty());
    e.release_key_loads();
  }
  SECTION("the newer answer first, then the stale one: dropped") {
    std::swap(e.held_key_loads[0], e.held_key_loads[1]);
    e.release_key_loads();
  }
  REQUIRE(e.run_until([&] { return e.store.in_sync() == 10; }, 1min));
  REQUIRE(e.run_for(30s));
  INFO(e.figures());
  CHECK(e.store.pauses().empty());
  CHECK(e.store.in_sync("t0000") == 10);
}

TEST_CASE("keys that fail to load pause the tenant (CREDENTIALS_INVALID); fixed keys resume it", "[engine]") {
  Engine e(2);
  e.store.tenant("t0000")->private_key_path = "missing.pem";
  e.add_rows(0, 10);
  e.add_rows(1, 10);
  e.start();
  REQUIRE(e.run_until([&] { return e.store.in_sync("t0001") == 10; }, 1min));
  REQUIRE(e.run_for(10s));
  INFO(e.figures());
  REQUIRE(e.store.pauses().count("t0000"));
  CHECK(e.store.pauses().at("t0000").error_code == "CREDENTIALS_INVALID");
  CHECK_THAT(e.store.pauses().at("t0000").reason, Catch::Matchers::Contains("missing.pem"));
  CHECK(requests_for(e, 0) == 0);

  e.store.tenant("t0000")->private_key_path = "merchant_key.pem";
  e.reconciler->on_notification("callbackd_tenants", "");
  REQUIRE(e.run_until([&] { return e.store.in_sync("t0000") == 10; }, 1min));
  CHECK(e.store.pauses().count("t0000") == 0);
}
