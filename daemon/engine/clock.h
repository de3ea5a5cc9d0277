// The run loop's time, injected: the daemon passes SystemClock, the engine tests a simulated
// clock that jumps from one timer's deadline to the next (tests/engine). Nothing in the
// engine reads std::chrono clocks directly.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>

#include "core/reconcile/time.h"

namespace callbackd::engine {

// One waiter at a time: wait_until() returns at `deadline` or as soon as wake() is called
// (whichever comes first); wake() with nobody waiting is remembered, so a wake-up between
// two waits is never lost. wake() never resumes the waiter inline (it is called from other
// coroutines): the waiter resumes from the io_context, and further wake()s before it has
// resumed are part of that one return, not remembered for the next wait. Destroying a Timer
// ends a pending wait as wake() does; after that return the waiter must not use the Timer.
//
// Cost of SystemClock's timer (a steady_timer): a wake() is one posted handler, no cancel.
// The steady_timer is re-armed (a timer-queue update, and a timerfd_settime when it becomes
// the earliest timer) only when a wait's deadline is earlier than the one it is armed for or
// that one has already fired: kicks under an unchanged deadline touch no timer at all, and a
// deadline that moves later re-arms once, when the earlier arming fires (a wait without a
// deadline lets it fire unused).
// An arming left after the last wait is outstanding work for the io_context until it fires or
// the Timer is destroyed (the daemon stops its io_context when the run loop returns).
class Timer {
 public:
  virtual ~Timer() = default;
  virtual boost::asio::awaitable<void> wait_until(reconcile::Instant deadline) = 0;
  virtual void wake() = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic: every decision and deadline (core/reconcile/time.h).
  virtual reconcile::Instant now() const = 0;
  // Wall clock: only for what WeChat Pay sees or says (a request's timestamp, a response's
  // signature time).
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // A timer on `io` that runs on this clock.
  virtual std::unique_ptr<Timer> make_timer(boost::asio::io_context& io) = 0;
};

// The real clocks, and a timer on Asio's steady_timer.
class SystemClock final : public Clock {
 public:
  reconcile::Instant now() const override;
  std::chrono::system_clock::time_point wall_now() const override;
  std::unique_ptr<Timer> make_timer(boost::asio::io_context& io) override;
};

}  // namespace callbackd::engine
