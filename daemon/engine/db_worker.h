// The daemon's database thread. libpqxx calls block, so they never run on the network
// io_context: the reconciler posts jobs here and gets the results posted back. Jobs run one
// at a time, in the order posted, on one Store (one connection) — so a batch of records is
// always written before a later claim of the same tenant is read.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "engine/store.h"

namespace callbackd::engine {

class DbWorker {
 public:
  using Job = std::function<void(Store&)>;

  // Starts the thread. `make_store` runs on it (so a slow connect never blocks the caller);
  // its DatabaseError is retried with backoff until it succeeds or stop() is called.
  DbWorker(std::function<std::unique_ptr<Store>()> make_store, std::function<void(const std::string&)> log_error);
  // No thread: every job is posted to `io` and runs there with `store`, in order (the engine
  // tests, where a database round trip is one event of simulated time).
  DbWorker(boost::asio::io_context& io, Store& store);
  ~DbWorker();  // stop() + join
  DbWorker(const DbWorker&) = delete;
  DbWorker& operator=(const DbWorker&) = delete;

  // Queues a job. A job that throws DatabaseError is NOT retried here: the job itself
  // reports the failure to its caller (who knows whether to retry); the worker reconnects
  // with backoff before running the next job.
  void post(Job job);

  // Runs the jobs already queued, then ends the thread. Idempotent.
  void stop();

  std::size_t queued() const;

 private:
  void loop();

  boost::asio::io_context* inline_io_ = nullptr;
  Store* inline_store_ = nullptr;
  std::function<std::unique_ptr<Store>()> make_store_;
  std::function<void(const std::string&)> log_error_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace callbackd::engine
