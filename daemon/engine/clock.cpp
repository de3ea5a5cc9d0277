#include "engine/clock.h"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <optional>

namespace callbackd::engine {

namespace asio = boost::asio;

namespace {

// What the steady_timer's handler and a posted resumption may still reach after the Timer is
// gone: they hold a weak_ptr to it, never the Timer itself.
struct WaitState;

// The suspended wait_until's completion handler. Use_awaitable's handler is move-only and
// Boost 1.74 has no any_completion_handler, so it is type-erased here by hand.
class Waiter {
 public:
  template <typename Handler>
  explicit Waiter(Handler handler) : resume_(std::make_unique<Resume<Handler>>(std::move(handler))) {}

  // Posts the waiter's resumption to its own executor: never run inline, because wake() is
  // called from other coroutines on the same thread. `state` (may be empty) learns when the
  // resumption has run.
  void post_resumption(std::weak_ptr<WaitState> state) && { std::move(*resume_).post(std::move(state)); }

 private:
  struct ResumeBase {
    virtual ~ResumeBase() = default;
    virtual void post(std::weak_ptr<WaitState> state) && = 0;
  };
  template <typename Handler>
  struct Resume final : ResumeBase {
    explicit Resume(Handler h) : handler(std::move(h)) {}
    void post(std::weak_ptr<WaitState> state) && override;
    Handler handler;
  };
  std::unique_ptr<ResumeBase> resume_;
};

struct WaitState {
  std::optional<Waiter> waiter;  // a wait_until suspended until a wake() or its deadline
  reconcile::Instant deadline;   // that wait's
  bool resuming = false;         // the waiter's resumption is posted and has not run yet
  bool woken = false;            // a wake() while nobody waited, for the next wait
  // The steady_timer: armed (its handler not run yet) for armed_for. Each arming has its own
  // number, so a handler of an arming replaced since (expires_at) knows it is stale.
  bool armed = false;
  reconcile::Instant armed_for;
  std::uint64_t arming = 0;

  // Hands the waiter's resumption to the io_context; wake()s until it runs join it.
  void resume_waiter(const std::shared_ptr<WaitState>& self) {
    resuming = true;
    Waiter w = std::move(*waiter);
    waiter.reset();
    std::move(w).post_resumption(self);
  }
};

template <typename Handler>
void Waiter::Resume<Handler>::post(std::weak_ptr<WaitState> state) && {
  const auto executor = asio::get_associated_executor(handler);
  asio::post(executor, [state = std::move(state), h = std::move(handler)]() mutable {
    if (auto s = state.lock()) s->resuming = false;
    h();
  });
}

// A wake() is a posted handler and nothing else: the steady_timer keeps the arming it has.
// A wait re-arms it (expires_at, one timerfd_settime when it becomes the earliest timer) only
// when its deadline is earlier than the armed one or that one has fired; a later deadline, or
// none, leaves the earlier arming in place (it fires, finds the wait's deadline later, and
// re-arms for it or, without one, stops).
class SteadyTimer final : public Timer {
 public:
  explicit SteadyTimer(asio::io_context& io) : timer_(io) {}

  // A pending wait ends as a wake() ends it (the waiter resumes from the io_context); the
  // steady_timer's handler, run later with operation_aborted, finds the state gone.
  ~SteadyTimer() override {
    if (state_->waiter) std::move(*state_->waiter).post_resumption({});
  }

  asio::awaitable<void> wait_until(reconcile::Instant deadline) override {
    if (state_->woken) {
      state_->woken = false;
      co_return;
    }
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
        [this](auto handler, reconcile::Instant until) {
          state_->waiter.emplace(std::move(handler));
          state_->deadline = until;
          // An arming for an earlier instant stays: when it fires, its handler re-arms for this
          // deadline if the wait is still on. A loop whose deadline moves later at every kick
          // then re-arms once per armed instant reached, not once per kick.
          if (until != reconcile::Instant::max() && (!state_->armed || until < state_->armed_for)) arm(until);
        },
        asio::use_awaitable, deadline);
    // Nothing here may touch the Timer: its owner may have destroyed it to end this wait.
  }

  void wake() override {
    if (state_->waiter)
      state_->resume_waiter(state_);
    else if (!state_->resuming)
      state_->woken = true;
    // else: the waiter's resumption is under way and will see whatever this wake-up announces.
  }

 private:
  void arm(reconcile::Instant at) {
    WaitState& s = *state_;
    s.armed = true;
    s.armed_for = at;
    const std::uint64_t arming = ++s.arming;
    timer_.expires_at(at);
    timer_.async_wait([weak = std::weak_ptr<WaitState>(state_), this, arming](const boost::system::error_code&) {
      const auto state = weak.lock();
      if (!state || state->arming != arming) return;  // the Timer is gone, or re-armed since
      state->armed = false;
      if (!state->waiter) return;  // ended by a wake(): the arming was kept for the next wait
      if (state->deadline <= state->armed_for)
        state->resume_waiter(state);
      else if (state->deadline != reconcile::Instant::max())
        arm(state->deadline);  // `this` is alive: the state is
    });
  }

  asio::steady_timer timer_;
  std::shared_ptr<WaitState> state_ = std::make_shared<WaitState>();
};

}  // namespace

reconcile::Instant SystemClock::now() const { return reconcile::Clock::now(); }

std::chrono::system_clock::time_point SystemClock::wall_now() const { return std::chrono::system_clock::now(); }

std::unique_ptr<Timer> SystemClock::make_timer(asio::io_context& io) { return std::make_unique<SteadyTimer>(io); }

}  // namespace callbackd::engine
