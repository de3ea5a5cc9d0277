#include "engine/clock.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace callbackd::engine {

namespace {

class SteadyTimer final : public Timer {
 public:
  explicit SteadyTimer(boost::asio::io_context& io) : timer_(io) {}

  boost::asio::awaitable<void> wait_until(reconcile::Instant deadline) override {
    if (woken_) {
      woken_ = false;
      co_return;
    }
    waiting_ = true;
    timer_.expires_at(deadline);
    boost::system::error_code ec;
    co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    waiting_ = false;
    woken_ = false;
  }

  void wake() override {
    if (waiting_)
      timer_.cancel();
    else
      woken_ = true;
  }

 private:
  boost::asio::steady_timer timer_;
  bool waiting_ = false;
  bool woken_ = false;
};

}  // namespace

reconcile::Instant SystemClock::now() const { return reconcile::Clock::now(); }

std::chrono::system_clock::time_point SystemClock::wall_now() const { return std::chrono::system_clock::now(); }

std::unique_ptr<Timer> SystemClock::make_timer(boost::asio::io_context& io) {
  return std::make_unique<SteadyTimer>(io);
}

}  // namespace callbackd::engine
