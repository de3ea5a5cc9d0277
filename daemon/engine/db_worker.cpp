#include "engine/db_worker.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>

#include "core/logging/event.h"

namespace callbackd::engine {

DbWorker::DbWorker(std::function<std::unique_ptr<Store>()> make_store, std::function<void(const std::string&)> log_error)
    : make_store_(std::move(make_store)), log_error_(std::move(log_error)), thread_([this] { loop(); }) {}

DbWorker::DbWorker(boost::asio::io_context& io, Store& store) : inline_io_(&io), inline_store_(&store) {}

DbWorker::~DbWorker() { stop(); }

void DbWorker::post(Job job) {
  if (inline_io_) {
    boost::asio::post(*inline_io_, [store = inline_store_, job = std::move(job)] {
      try {
        job(*store);
      } catch (const std::exception& e) {
        logging::error("database_job_failed", {{"error", e.what()}});
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

void DbWorker::loop() {
  std::unique_ptr<Store> store;
  auto backoff = std::chrono::milliseconds{250};
  const auto max_backoff = std::chrono::milliseconds{10'000};
  // Sleeps for the backoff, waking early only to stop.
  auto pause = [&] {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, backoff, [&] { return stopping_; });
    backoff = std::min(backoff * 2, max_backoff);
  };
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
    int failed_attempts = 0;
    const auto down_since = std::chrono::steady_clock::now();
    while (!store || !store->connected()) {
      try {
        if (store) store->reconnect();
        else store = make_store_();
        backoff = std::chrono::milliseconds{250};
        // Operators (and the fault tests) see when an outage ended and what it cost.
        if (failed_attempts > 0)
          logging::info("database_reconnected", {{"failed_attempts", failed_attempts},
                                                  {"down_ms", std::chrono::steady_clock::now() - down_since}});
      } catch (const std::exception& e) {
        ++failed_attempts;
        log_error_(std::string("database unavailable, retrying in ") + std::to_string(backoff.count()) +
                   " ms: " + e.what());
        {
          std::lock_guard lock(mutex_);
          if (stopping_) return;
        }
        pause();
      }
    }
    try {
      job(*store);
    } catch (const std::exception& e) {
      // The job has already told its caller; here only the connection matters.
      log_error_(std::string("database job failed: ") + e.what());
    }
  }
}

}  // namespace callbackd::engine
