#include "sim_clock.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace callbackd::engine_test {

namespace asio = boost::asio;

namespace {

// Suspends until `timer` is cancelled (the clock fires it, or a wake-up does): it is set to
// expire never, so only the simulated clock moves it.
asio::awaitable<void> park(asio::steady_timer& timer) {
  timer.expires_at(asio::steady_timer::time_point::max());
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

class SimTimer final : public engine::Timer {
 public:
  SimTimer(asio::io_context& io, SimClock& clock) : timer_(io), clock_(clock) {}
  ~SimTimer() override {
    if (pending_) clock_.cancel(pending_);
  }

  // As clock.h says: returns at `deadline` or on wake(), whichever is first, resumed from the
  // io_context (the park's handler); a wake() while nobody waits is kept for the next wait,
  // one before the waiter has resumed joins its return. Destroying the timer ends the wait
  // (timer_'s destructor cancels the park), and the waiter then touches nothing of it.
  asio::awaitable<void> wait_until(Instant deadline) override {
    if (woken_) {
      woken_ = false;
      co_return;
    }
    waiting_ = true;
    const bool passed = deadline <= clock_.now();
    if (deadline != Instant::max())
      pending_ = clock_.schedule(
          deadline,
          [this] {
            pending_ = 0;
            timer_.cancel();
          },
          passed);
    const std::weak_ptr<bool> alive = alive_;
    co_await park(timer_);
    if (alive.expired()) co_return;
    if (pending_) {
      clock_.cancel(pending_);
      pending_ = 0;
    }
    waiting_ = false;
    woken_ = false;
  }

  void wake() override {
    ++clock_.counts.wakes;
    if (waiting_)
      timer_.cancel();
    else
      woken_ = true;
  }

 private:
  asio::steady_timer timer_;
  SimClock& clock_;
  std::uint64_t pending_ = 0;
  bool waiting_ = false;
  bool woken_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // expires with the timer
};

}  // namespace

SimClock::SimClock(std::chrono::system_clock::time_point wall_start)
    : now_(Instant{} + std::chrono::hours{24}), wall_start_(wall_start), start_(now_) {}

std::chrono::system_clock::time_point SimClock::wall_now() const {
  return wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(now_ - start_);
}

std::unique_ptr<engine::Timer> SimClock::make_timer(asio::io_context& io) {
  return std::make_unique<SimTimer>(io, *this);
}

asio::awaitable<void> SimClock::sleep_until(asio::io_context& io, Instant deadline) {
  asio::steady_timer timer(io);
  std::uint64_t id = schedule(
      deadline,
      [&timer, &id] {
        id = 0;
        timer.cancel();
      },
      deadline <= now_);
  co_await park(timer);
  if (id) cancel(id);
}

std::uint64_t SimClock::schedule(Instant deadline, std::function<void()> fire, bool armed_in_past) {
  const std::uint64_t id = next_id_++;
  // A passed instant fires one turn's cost later (see the header), after anything already due.
  const Instant at = armed_in_past ? now_ + kTurnCost : deadline;
  pending_.emplace(std::make_pair(at, id), Pending{std::move(fire), armed_in_past});
  deadline_of_.emplace(id, at);
  return id;
}

void SimClock::cancel(std::uint64_t id) {
  auto it = deadline_of_.find(id);
  if (it == deadline_of_.end()) return;
  pending_.erase({it->second, id});
  deadline_of_.erase(it);
}

std::optional<Instant> SimClock::next_deadline() const {
  if (pending_.empty()) return std::nullopt;
  return pending_.begin()->first.first;
}

bool SimClock::fire_next(Instant limit) {
  if (pending_.empty() || pending_.begin()->first.first > limit) return false;
  auto node = pending_.extract(pending_.begin());
  deadline_of_.erase(node.key().second);
  advance_to(node.key().first);
  if (node.mapped().armed_in_past)
    ++counts.passed_deadlines_fired;
  else
    ++counts.deadlines_fired;
  node.mapped().fire();
  return true;
}

void SimDriver::settle() {
  for (;;) {
    io_.restart();
    if (io_.poll() == 0) return;
  }
}

bool SimDriver::run_for(Duration d) {
  const Instant end = clock_.now() + d;
  settle();
  while (clock_.fire_next(end)) {
    settle();
    if (++firings_ > max_firings) {
      gave_up = true;
      return false;
    }
  }
  clock_.advance_to(end);
  settle();
  return true;
}

bool SimDriver::run_until(const std::function<bool()>& done, Duration limit) {
  const Instant end = clock_.now() + limit;
  settle();
  while (!done()) {
    if (!clock_.fire_next(end)) break;
    settle();
    if (++firings_ > max_firings) {
      gave_up = true;
      return false;
    }
  }
  return done();
}

}  // namespace callbackd::engine_test
