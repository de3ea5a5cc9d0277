#include "engine/db_worker.h"

#include <boost/asio/post.hpp>

#include <chrono>
#include <random>

#include "core/logging/event.h"
#include "core/reconcile/backoff.h"

namespace callbackd::engine {

namespace {

// Reconnecting after the database went away: from a quarter second up to ten seconds, with
// jitter, so that instances that lost one server together do not knock on it together.
constexpr reconcile::RetryPolicy kReconnect{std::chrono::milliseconds{250}, std::chrono::seconds{10}};

}  // namespace

std::function<void(const Result<Done, DatabaseError>&)> log_if_failed(logging::Level level, std::string_view event,
                                                                      logging::Fields fields) {
  return [level, event = std::string(event), fields = std::move(fields)](const Result<Done, DatabaseError>& answer) {
    if (answer) return;
    logging::Fields line = fields;
    line.emplace(line.begin(), "error", answer.error().what());
    logging::emit(level, event, std::move(line));
  };
}

DbWorker::DbWorker(std::function<std::unique_ptr<Store>()> make_store,
                   std::function<void(const std::string&)> log_error)
    : make_store_(std::move(make_store)), log_error_(std::move(log_error)), thread_([this] { loop(); }) {}

DbWorker::DbWorker(boost::asio::io_context& io, Store& store) : inline_io_(&io), inline_store_(&store) {}

DbWorker::~DbWorker() { stop(); }

DatabaseError DbWorker::unexpected(const char* what) {
  logging::error("database_call_bug", {{"error", what},
                                       {"note",
                                        "a store call threw something other than "
                                        "DatabaseError; answered as a database error"}});
  return DatabaseError(std::string("unexpected error in a database call: ") + what);
}

void DbWorker::post(Job job) {
  if (inline_io_) {
    boost::asio::post(*inline_io_, [store = inline_store_, job = std::move(job)] {
      try {
        job(*store);
      } catch (const std::exception& e) {
        unexpected(e.what());
      }
    });
    return;
  }
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void DbWorker::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::size_t DbWorker::queued() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

bool DbWorker::connect(std::unique_ptr<Store>& store) {
  int failed_attempts = 0;
  const auto down_since = std::chrono::steady_clock::now();
  std::minstd_rand random(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  while (!store || !store->connected()) {
    try {
      if (store)
        store->reconnect();
      else
        store = make_store_();
      // Operators (and the fault tests) see when an outage ended and what it cost.
      if (failed_attempts > 0)
        logging::info("database_reconnected", {{"failed_attempts", failed_attempts},
                                               {"down_ms", std::chrono::steady_clock::now() - down_since}});
      return true;
    } catch (const std::exception& e) {  // DatabaseError, or whatever else connecting threw: logged, retried
      ++failed_attempts;
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(
          reconcile::retry_backoff(kReconnect, failed_attempts, uniform(random)));
      log_error_(std::string("database unavailable, retrying in ") + std::to_string(wait.count()) + " ms: " + e.what());
      // Sleeps for the backoff, waking early only to stop.
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, wait, [&] { return stopping_; })) return false;
    }
  }
  return true;
}

void DbWorker::loop() {
  std::unique_ptr<Store> store;
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and everything queued has run
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    // (Re)connect before the job; a database that is down delays jobs, it loses none.
    if (!connect(store)) return;
    try {
      job(*store);
    } catch (const std::exception& e) {
      // call() answers every failure to its caller; a raw job (post) should too.
      log_error_(std::string("database job failed: ") + e.what());
    }
  }
}

}  // namespace callbackd::engine
