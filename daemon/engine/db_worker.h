// The daemon's database thread. libpqxx calls block, so they never run on the network
// io_context: callers hand the worker a function of the Store and get its answer back on their
// own executor. Jobs run one at a time, in the order given, on one Store (one connection) — so
// a batch of records is always written before a later claim of the same tenant is read.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

#include "core/error.h"
#include "core/logging/log_line.h"
#include "engine/store.h"

namespace callbackd::engine {

// What DbWorker::call answers for a function that returns nothing.
struct Done {};

template <class Fn>
using DbAnswer = Result<
    std::conditional_t<std::is_void_v<std::invoke_result_t<Fn&, Store&>>, Done, std::invoke_result_t<Fn&, Store&>>,
    DatabaseError>;

class DbWorker {
 public:
  using Job = std::function<void(Store&)>;

  // Starts the thread. `make_store` runs on it (so a slow connect never blocks the caller);
  // its DatabaseError is retried with backoff (core/reconcile/backoff.h) until it succeeds or
  // stop() is called.
  DbWorker(std::function<std::unique_ptr<Store>()> make_store, std::function<void(const std::string&)> log_error);
  // No thread: every job is posted to `io` and runs there with `store`, in order (the engine
  // tests, where a database round trip is one event of simulated time).
  DbWorker(boost::asio::io_context& io, Store& store);
  ~DbWorker();  // stop() + join
  DbWorker(const DbWorker&) = delete;
  DbWorker& operator=(const DbWorker&) = delete;

  // The one way the engine talks to its database: runs `fn(store)` on the database thread and
  // resumes the awaiting coroutine on its own executor with what `fn` returned, or with the
  // DatabaseError it threw (a failure of the database is a value; the caller knows whether to
  // retry). Any other exception is a bug in the store: it is logged with its reason and
  // answered as a DatabaseError too, never dropped. The worker reconnects with backoff before
  // the next job.
  // `owner` is the caller's lifetime: when it has expired by the time the answer is back (the
  // reconciler was destroyed meanwhile), the awaiting coroutine is destroyed without being
  // resumed, so it never touches a dead object.
  template <class Fn>
  boost::asio::awaitable<DbAnswer<Fn>> call(std::weak_ptr<const void> owner, Fn fn);

  // For callers that are not coroutines: call(owner, fn) from `io`, then `then(answer)` there
  // (not at all once `owner` has expired). What `then` throws is a bug and ends io.run().
  template <class Fn, class Then>
  void call_then(boost::asio::io_context& io, std::weak_ptr<const void> owner, Fn fn, Then then);

  // Queues a raw job (app/operations.cpp). A job that throws is logged as a bug; prefer call().
  void post(Job job);

  // Runs the jobs already queued, then ends the thread. Idempotent.
  void stop();

  std::size_t queued() const;

 private:
  template <class Fn>
  static DbAnswer<Fn> run_caught(Fn& fn, Store& store);
  // An exception other than DatabaseError escaped a store call: logged as the bug it is.
  static DatabaseError unexpected(const char* what);

  void loop();
  // Connects (or reconnects) the thread's store, retrying with backoff; false once stopping.
  bool connect(std::unique_ptr<Store>& store);

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

// The answer to a store call whose failure changes nothing on the caller's side (a lease
// lapses on its own, an entry is judged again): a failure is logged as `event` with the error
// and `fields` (say what it means), nothing more.
std::function<void(const Result<Done, DatabaseError>&)> log_if_failed(logging::Level level, std::string_view event,
                                                                      logging::Fields fields = {});

template <class Fn>
DbAnswer<Fn> DbWorker::run_caught(Fn& fn, Store& store) {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn&, Store&>>) {
      fn(store);
      return Done{};
    } else {
      return fn(store);
    }
  } catch (const DatabaseError& e) {
    return e;
  } catch (const std::exception& e) {
    return unexpected(e.what());
  }
}

template <class Fn>
boost::asio::awaitable<DbAnswer<Fn>> DbWorker::call(std::weak_ptr<const void> owner, Fn fn) {
  using Answer = DbAnswer<Fn>;
  auto initiate = [this](auto handler, std::weak_ptr<const void> caller, Fn job) {
    using Handler = decltype(handler);
    // One allocation per call: the function, the caller's handler and the answer travel
    // together to the database thread and back.
    struct Pending {
      Fn fn;
      Handler handler;
      std::weak_ptr<const void> owner;
      std::optional<Answer> answer;
    };
    auto pending = std::make_shared<Pending>(Pending{std::move(job), std::move(handler), std::move(caller), {}});
    post([pending](Store& store) mutable {
      pending->answer.emplace(run_caught(pending->fn, store));
      const auto executor = boost::asio::get_associated_executor(pending->handler);
      // Back on the caller's executor (at once when already there: the inline worker). An
      // expired owner drops the handler there, which destroys the waiting coroutine.
      boost::asio::dispatch(executor, [pending = std::move(pending)] {
        if (pending->owner.expired()) return;
        pending->handler(std::move(*pending->answer));
      });
    });
  };
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>, void(Answer)>(
      std::move(initiate), boost::asio::use_awaitable, std::move(owner), std::move(fn));
}

template <class Fn, class Then>
void DbWorker::call_then(boost::asio::io_context& io, std::weak_ptr<const void> owner, Fn fn, Then then) {
  boost::asio::co_spawn(
      io,
      [this, owner = std::move(owner), fn = std::move(fn), then = std::move(then)]() mutable
      -> boost::asio::awaitable<void> { then(co_await call(std::move(owner), std::move(fn))); },
      [](const std::exception_ptr& bug) {
        if (bug) std::rethrow_exception(bug);
      });
}

}  // namespace callbackd::engine
