// The platform certificates' refresh schedule (core/reconcile/certificate_refresh.h).
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "core/reconcile/certificate_refresh.h"

using namespace callbackd::reconcile;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;

TEST_CASE("certificate refresh: within 12 h of the last download, spread by tenant", "[reconcile][certificates]") {
  std::set<long long> waits;
  for (int i = 0; i < 1000; ++i) {
    const std::string tenant = "tenant-" + std::to_string(i);
    const auto wait = certificate_refresh_wait(milliseconds{0}, tenant);
    CHECK(wait <= hours(12));
    CHECK(wait > hours(11));
    // The same tenant, the same answer (restarts and other instances agree).
    CHECK(certificate_refresh_wait(milliseconds{0}, tenant) == wait);
    // Counted from the last download.
    CHECK(certificate_refresh_wait(hours(3), tenant) == wait - hours(3));
    waits.insert(std::chrono::duration_cast<minutes>(wait).count());
  }
  // 1,000 tenants downloaded at the same start-up do not refresh in the same few minutes.
  CHECK(waits.size() > 50);
}

TEST_CASE("certificate refresh: overdue ones wait a spread share of ten minutes", "[reconcile][certificates]") {
  for (const char* tenant : {"acme", "bravo", "charlie"}) {
    const auto wait = certificate_refresh_wait(hours(30), tenant);
    CHECK(wait >= milliseconds{0});
    CHECK(wait < minutes(10));
  }
  // A clock that went back counts as just fetched.
  CHECK(certificate_refresh_wait(milliseconds{-5000}, "acme") == certificate_refresh_wait(milliseconds{0}, "acme"));
}
