// Simulated time for the engine tests: engine::Clock and engine::Timer on a clock that only the
// test driver moves. A wait is an Asio timer that never expires by itself; the driver runs the
// io_context until nothing is ready, then jumps the clock to the earliest pending deadline and
// fires it. Whole minutes of the real run loop then take milliseconds, and nothing sleeps.
//
// A wait armed at or before `now` is what a real steady_timer would fire at once: here it fires
// after kTurnCost of simulated time, the CPU a real turn of the loop costs (issue 13 measured
// about 5,000 turns a second while spinning). Without that a loop that re-arms a passed instant
// would spin forever at one instant; with it, it spins as a real one does and the counts show it.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "engine/clock.h"

namespace callbackd::engine_test {

using reconcile::Duration;
using reconcile::Instant;

// What the driver did, for the assertions and the report.
struct SimCounts {
  std::uint64_t deadlines_fired = 0;         // waits that ended at their (future) deadline
  std::uint64_t passed_deadlines_fired = 0;  // waits armed at or before now (each a wasted turn)
  std::uint64_t wakes = 0;                   // Timer::wake() calls (kicks of the run loop)
};

class SimClock final : public engine::Clock {
 public:
  static constexpr Duration kTurnCost = std::chrono::microseconds{200};

  // Steady time starts at an arbitrary instant; wall time at `wall_start` (WeChat Pay's
  // signatures carry it).
  explicit SimClock(std::chrono::system_clock::time_point wall_start);

  Instant now() const override { return now_; }
  std::chrono::system_clock::time_point wall_now() const override;
  std::unique_ptr<engine::Timer> make_timer(boost::asio::io_context& io) override;

  // For simulated latencies (FakeWechatpay): returns at `deadline` of simulated time.
  boost::asio::awaitable<void> sleep_until(boost::asio::io_context& io, Instant deadline);

  // Driver side. `fire` runs when the clock reaches `deadline`; returns an id for cancel().
  std::uint64_t schedule(Instant deadline, std::function<void()> fire, bool armed_in_past);
  void cancel(std::uint64_t id);
  // The earliest pending deadline (nullopt: none).
  std::optional<Instant> next_deadline() const;
  // Moves the clock to the earliest deadline if it is at most `limit` and fires it; false when
  // there is none by then.
  bool fire_next(Instant limit);
  void advance_to(Instant t) {
    if (t > now_) now_ = t;
  }

  SimCounts counts;

 private:
  struct Pending {
    std::function<void()> fire;
    bool armed_in_past;
  };
  Instant now_;
  std::chrono::system_clock::time_point wall_start_;
  Instant start_;
  std::uint64_t next_id_ = 1;
  std::map<std::pair<Instant, std::uint64_t>, Pending> pending_;
  std::map<std::uint64_t, Instant> deadline_of_;
};

// Runs an io_context in simulated time.
class SimDriver {
 public:
  SimDriver(boost::asio::io_context& io, SimClock& clock) : io_(io), clock_(clock) {}

  // Runs every ready handler until none is left (the simulated instant does not move).
  void settle();
  // Runs for `d` of simulated time. Returns false when the driver gave up because more than
  // `max_firings` deadlines fired (a loop spinning on passed instants); the counts say so.
  bool run_for(Duration d);
  // Runs until `done()` holds after settling, or `limit` passes; true when done.
  bool run_until(const std::function<bool()>& done, Duration limit);

  std::uint64_t max_firings = 400'000;
  bool gave_up = false;

 private:
  boost::asio::io_context& io_;
  SimClock& clock_;
  std::uint64_t firings_ = 0;
};

}  // namespace callbackd::engine_test
