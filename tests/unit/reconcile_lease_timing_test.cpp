// The tenant lease and its send margin, from every phase of a request (lease_timing.h).
#include <catch2/catch.hpp>

#include "core/reconcile/lease_timing.h"

using namespace callbackd;
using namespace callbackd::reconcile;
using namespace std::chrono_literals;

TEST_CASE("lease timing: the send margin covers the client's whole deadline, for every accepted config",
          "[lease_timing]") {
  struct Row {
    Millis connect_timeout, request_timeout;
    Duration deadline, margin, lease, dead_owner;
  };
  const std::vector<Row> rows{
      // The defaults.
      {5s, 10s, 20s, 22s, 30s, 12s},
      // Issue 13 item 10: accepted, and the old margin (request_timeout + 2 s = 7 s) let a
      // request dispatched 7 s before the lapse connect for up to 20 s and write after it.
      {10s, 5s, 25s, 27s, 35s, 7s},
      // The e2e tests' shorter timeouts.
      {1s, 5s, 7s, 9s, 17s, 7s},
      // The extremes config.cpp accepts.
      {10ms, 10ms, 30ms, 2030ms, 10030ms, 2010ms},
      {600s, 600s, 1800s, 1802s, 1810s, 602s},
  };
  for (const auto& r : rows) {
    WechatpayConfig w;
    w.connect_timeout = r.connect_timeout;
    w.request_timeout = r.request_timeout;
    INFO("connect_timeout " << r.connect_timeout.count() << " ms, request_timeout " << r.request_timeout.count()
                            << " ms");
    CHECK(request_deadline(w) == r.deadline);
    const LeaseTiming t = lease_timing(w);
    CHECK(t.send_margin == r.margin);
    CHECK(t.lease == r.lease);
    CHECK(t.dead_owner_margin == r.dead_owner);
    // What must hold whatever the tuning: a request dispatched just before send_until has
    // given up (every phase clipped to the deadline) before the lease can lapse, and an
    // instance can send at all between renewals.
    CHECK(t.send_margin > request_deadline(w));  // strictly more: the slack
    CHECK(t.send_margin >= 2 * w.connect_timeout + w.request_timeout);
    CHECK(t.lease > t.send_margin);
    // A proven-dead owner's last write had its own write deadline.
    CHECK(t.dead_owner_margin > w.request_timeout);
  }
}

TEST_CASE("lease timing after a reload: the longer timing holds until the old requests are done", "[lease_timing]") {
  WechatpayConfig before;
  before.connect_timeout = 10s;
  before.request_timeout = 5s;
  WechatpayConfig after;
  after.connect_timeout = 1s;
  after.request_timeout = 2s;
  const Instant reloaded = Instant{} + 1000h;
  const LeaseTiming old_timing = lease_timing(before);
  const LeaseTiming new_timing = lease_timing(after);
  struct Row {
    Duration since_reload;
    LeaseTiming expected;
  };
  for (const auto& r : std::vector<Row>{{0s, old_timing}, {26s, old_timing}, {27s, new_timing}, {1h, new_timing}}) {
    const LeaseTiming t = lease_timing_since_reload(old_timing, reloaded, new_timing, reloaded + r.since_reload);
    CHECK(t.send_margin == r.expected.send_margin);
    CHECK(t.lease == r.expected.lease);
  }
  // Lengthened: the new, longer timing at once.
  const LeaseTiming t = lease_timing_since_reload(new_timing, reloaded, old_timing, reloaded);
  CHECK(t.send_margin == old_timing.send_margin);
}

TEST_CASE("lease timing: how much earlier tenants stop after a reload, and until when a renewal sends",
          "[lease_timing]") {
  WechatpayConfig short_deadlines;
  short_deadlines.connect_timeout = 1s;
  short_deadlines.request_timeout = 2s;
  WechatpayConfig long_deadlines;
  long_deadlines.connect_timeout = 10s;
  long_deadlines.request_timeout = 5s;
  const LeaseTiming shorter = lease_timing(short_deadlines);  // margin 1 + 4 + 1 = 6 s
  const LeaseTiming longer = lease_timing(long_deadlines);    // margin 1 + 25 + 1 = 27 s
  struct ShiftRow {
    const char* reload;
    LeaseTiming before;
    LeaseTiming after;
    Duration shift;
  };
  for (const auto& r : std::vector<ShiftRow>{{"deadlines lengthened", shorter, longer, 21s},
                                             {"deadlines shortened", longer, shorter, 0s},
                                             {"unchanged", longer, longer, 0s}}) {
    INFO(r.reload);
    CHECK(send_until_shift_after_reload(r.before, r.after) == r.shift);
  }

  const Instant lease_until = Instant{} + 1000h + 35s;
  struct UntilRow {
    const char* situation;
    Duration asked_with;
    Duration now;
    Instant expected;
  };
  for (const auto& r : std::vector<UntilRow>{
           {"no reload meanwhile", 27s, 27s, lease_until - 27s},
           {"a SIGHUP lengthened the deadlines meanwhile", 6s, 27s, lease_until - 27s},
           {"a SIGHUP shortened them: the lease was asked with the longer", 27s, 6s, lease_until - 27s}}) {
    INFO(r.situation);
    CHECK(send_until(lease_until, r.asked_with, r.now) == r.expected);
  }
}
