// The run loop's real timer (engine/clock.h, SystemClock::make_timer) on a real io_context and
// the real steady clock: wake-ups before and during a wait, deadlines, coalescing, and the
// Timer destroyed under a pending wait. Waits are tens of milliseconds; bounds are loose
// (seconds) where a loaded machine could be slow, tight where an early return is the bug.
#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "engine/clock.h"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using callbackd::reconcile::Duration;
using callbackd::reconcile::Instant;

namespace {

Instant now() { return callbackd::reconcile::Clock::now(); }

struct Fixture {
  asio::io_context io;
  callbackd::engine::SystemClock clock;
  std::unique_ptr<callbackd::engine::Timer> timer = clock.make_timer(io);

  void spawn(std::function<asio::awaitable<void>()> coroutine) {
    asio::co_spawn(io, std::move(coroutine), asio::detached);
  }
  // Runs until nothing is left to do (every coroutine done, no timer pending): a stuck wait
  // shows as the 10 s limit reached.
  bool run() {
    io.run_for(10s);
    return io.stopped();
  }
  // Waits `d` without the Timer under test.
  asio::awaitable<void> sleep(Duration d) {
    asio::steady_timer t(io, d);
    co_await t.async_wait(asio::use_awaitable);
  }
};

}  // namespace

TEST_CASE("a wake() before the wait makes it return at once", "[net][timer]") {
  Fixture f;
  f.timer->wake();
  Duration took{};
  bool returned = false;
  f.spawn([&]() -> asio::awaitable<void> {
    const Instant start = now();
    co_await f.timer->wait_until(start + 10s);
    took = now() - start;
    returned = true;
  });
  f.io.run_for(2s);
  REQUIRE(returned);
  CHECK(took < 1s);
}

TEST_CASE("a wake() during the wait ends it before the deadline, never inline", "[net][timer]") {
  Fixture f;
  Duration took{};
  bool returned = false;
  bool returned_inside_wake = false;
  Instant start{};
  f.spawn([&]() -> asio::awaitable<void> {
    start = now();
    co_await f.timer->wait_until(start + 10s);
    took = now() - start;
    returned = true;
  });
  f.spawn([&]() -> asio::awaitable<void> {
    co_await f.sleep(30ms);
    f.timer->wake();
    returned_inside_wake = returned;  // the waiter resumes later, from the io_context
  });
  REQUIRE(f.run());
  REQUIRE(returned);
  CHECK_FALSE(returned_inside_wake);
  CHECK(took >= 30ms);
  CHECK(took < 5s);
}

TEST_CASE("without a wake() the wait returns at its deadline, not before", "[net][timer]") {
  Fixture f;
  std::vector<Duration> took;
  f.spawn([&]() -> asio::awaitable<void> {
    // The second wait has the deadline the first one armed: the arming is reused.
    const Instant start = now();
    const Instant deadline = start + 60ms;
    co_await f.timer->wait_until(deadline);
    took.push_back(now() - start);
    co_await f.timer->wait_until(deadline + 40ms);
    took.push_back(now() - start);
  });
  REQUIRE(f.run());
  REQUIRE(took.size() == 2);
  CHECK(took[0] >= 60ms);
  CHECK(took[1] >= 100ms);
  CHECK(took[1] < 5s);
}

TEST_CASE("an arming kept from a woken wait neither ends a later wait early nor outlives it", "[net][timer]") {
  Fixture f;
  std::vector<Duration> took;
  f.spawn([&]() -> asio::awaitable<void> {
    // Returns at once, leaving the steady_timer armed for `deadline` ...
    Instant start = now();
    const Instant deadline = start + 300ms;
    f.timer->wake();
    co_await f.timer->wait_until(deadline);
    took.push_back(now() - start);
    // ... which still ends the next wait for the same deadline, at that deadline.
    co_await f.timer->wait_until(deadline);
    took.push_back(now() - start);
    // Woken again, armed for a far deadline; a nearer one after it is not missed.
    f.timer->wake();
    start = now();
    co_await f.timer->wait_until(start + 10s);
    took.push_back(now() - start);
    start = now();
    co_await f.timer->wait_until(start + 100ms);
    took.push_back(now() - start);
  });
  REQUIRE(f.run());
  REQUIRE(took.size() == 4);
  CHECK(took[0] < 300ms);
  CHECK(took[1] >= 300ms);
  CHECK(took[1] < 5s);
  CHECK(took[2] < 5s);
  CHECK(took[3] >= 100ms);
  CHECK(took[3] < 5s);

  // A later deadline: the earlier arming left behind fires first and must not end the wait.
  Fixture later;
  Duration until_later{};
  later.spawn([&]() -> asio::awaitable<void> {
    const Instant start = now();
    later.timer->wake();
    co_await later.timer->wait_until(start + 50ms);  // returns at once, leaves the arming
    co_await later.timer->wait_until(start + 200ms);
    until_later = now() - start;
  });
  REQUIRE(later.run());
  CHECK(until_later >= 200ms);
  CHECK(until_later < 5s);

  // No deadline: only a wake-up ends it, even with an earlier arming left behind.
  Fixture g;
  Duration until_woken{};
  g.spawn([&]() -> asio::awaitable<void> {
    const Instant start = now();
    g.timer->wake();
    co_await g.timer->wait_until(start + 50ms);  // returns at once, leaves the arming
    co_await g.timer->wait_until(Instant::max());
    until_woken = now() - start;
  });
  g.spawn([&]() -> asio::awaitable<void> {
    co_await g.sleep(150ms);
    g.timer->wake();
  });
  REQUIRE(g.run());
  CHECK(until_woken >= 150ms);
}

TEST_CASE("many wake()s between two waits, or during one, count as one", "[net][timer]") {
  Fixture f;
  std::vector<Duration> took;
  f.spawn([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 100; ++i) f.timer->wake();
    Instant start = now();
    co_await f.timer->wait_until(start + 10s);  // at once
    took.push_back(now() - start);
    start = now();
    co_await f.timer->wait_until(start + 50ms);  // nothing left of the 100: its deadline
    took.push_back(now() - start);
    start = now();
    co_await f.timer->wait_until(start + 10s);  // the burst below ends it
    took.push_back(now() - start);
    start = now();
    co_await f.timer->wait_until(start + 50ms);  // and is not remembered
    took.push_back(now() - start);
  });
  f.spawn([&]() -> asio::awaitable<void> {
    co_await f.sleep(400ms);
    for (int i = 0; i < 100; ++i) f.timer->wake();
  });
  REQUIRE(f.run());
  REQUIRE(took.size() == 4);
  CHECK(took[0] < 1s);
  CHECK(took[1] >= 50ms);
  CHECK(took[2] < 5s);
  CHECK(took[3] >= 50ms);
}

TEST_CASE("destroying the timer ends a pending wait and leaves nothing behind", "[net][timer]") {
  SECTION("a wait pending") {
    Fixture f;
    bool returned = false;
    Instant start = now();
    f.spawn([&]() -> asio::awaitable<void> {
      co_await f.timer->wait_until(start + 10s);
      returned = true;  // nothing of the Timer is touched here
    });
    f.spawn([&]() -> asio::awaitable<void> {
      co_await f.sleep(30ms);
      f.timer.reset();
      CHECK_FALSE(returned);
    });
    REQUIRE(f.run());
    CHECK(returned);
    CHECK(now() - start < 5s);
  }
  SECTION("its steady_timer armed, nobody waiting") {
    Fixture f;
    f.spawn([&]() -> asio::awaitable<void> {
      f.timer->wake();
      co_await f.timer->wait_until(now() + 10s);  // at once, leaves the arming
      f.timer.reset();
    });
    REQUIRE(f.run());
  }
  SECTION("its deadline passed, the handler queued") {
    Fixture f;
    bool returned = false;
    f.spawn([&]() -> asio::awaitable<void> {
      co_await f.timer->wait_until(now() - 1ms);
      returned = true;
    });
    // Runs once the waiter is suspended; the passed deadline has its handler ready by then or
    // just after.
    asio::post(f.io, [&] { asio::post(f.io, [&] { f.timer.reset(); }); });
    REQUIRE(f.run());
    CHECK(returned);
  }
  SECTION("a wake-up's resumption queued") {
    Fixture f;
    bool returned = false;
    f.spawn([&]() -> asio::awaitable<void> {
      co_await f.timer->wait_until(now() + 10s);
      returned = true;
    });
    f.spawn([&]() -> asio::awaitable<void> {
      co_await f.sleep(20ms);
      f.timer->wake();
      f.timer.reset();
    });
    REQUIRE(f.run());
    CHECK(returned);
  }
}
