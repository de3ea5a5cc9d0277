// One real engine::Reconciler in simulated time: a SimClock, a MemoryStore behind the inline
// DbWorker, a FakeWechatpay, and tenants whose key files are the test keys. The scenarios
// (*_enginetest.cpp) set the world up, run minutes of simulated time, and compare what the
// loop did (ReconcilerStats::loop_turns, requests) with the events that happened.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/progress/row_tally.h"
#include "engine/db_worker.h"
#include "fake_wechatpay.h"
#include "memory_store.h"
#include "engine/reconciler.h"
#include "sim_clock.h"

namespace callbackd::engine_test {

inline constexpr const char* kNotifyUrl = "https://pay.example.com/wechatpay/favor";

// The events a run of the loop may react to, counted from outside the loop.
struct Events {
  std::uint64_t polls = 0;          // poll_interval deadlines in the run
  std::uint64_t heartbeats = 0;     // heartbeat deadlines (every 2 s) in the run
  std::uint64_t requests = 0;       // requests WeChat Pay received (each a dispatch and a completion)
  std::uint64_t store_calls = 0;    // Store calls (each a completion posted back)
  std::uint64_t notifications = 0;  // NOTIFYs delivered
  std::uint64_t total() const { return polls + heartbeats + requests + store_calls + notifications; }
};

class Engine {
 public:
  // `tenants` tenants named t0001.. with rate `rate_per_minute` each; none has rows yet.
  explicit Engine(int tenants = 1, int rate_per_minute = 1000, Config config = default_config());
  ~Engine();

  static Config default_config();
  static std::string tenant_id(int i);
  static std::string sub_mchid(int tenant, int row);

  // `rows` desired rows for tenant `i` (all due now); delivers the NOTIFY when `notify`.
  void add_rows(int tenant, int rows, bool notify = true);
  void notify(const std::string& tenant_id);
  // Tenant `i` in certificate mode (no WeChat Pay key, an APIv3 key file), and WeChat Pay
  // signing with the platform certificate for everyone (FakeWechatpay::certificate_mode).
  void certificate_mode(int tenant);

  void start();              // co_spawns Reconciler::run()
  bool run_for(Duration d);  // false: the driver gave up (a spinning loop)
  bool run_until(const std::function<bool()>& done, Duration limit);
  void stop();  // Reconciler::stop() and the drain, in simulated time

  Events events() const;
  std::uint64_t turns() const { return reconciler->stats().loop_turns; }
  Duration elapsed() const { return clock.now() - started_at_; }
  // What the run did, one line, for the test's output and docs/reliability.md.
  std::string figures() const;

  boost::asio::io_context io;
  SimClock clock;
  SimDriver driver{io, clock};
  MemoryStore store;
  FakeWechatpay wechatpay{io, clock};
  engine::DbWorker db{io, store};
  Config config;
  std::unique_ptr<engine::Reconciler> reconciler;
  // The row moves the reconciler reported (ReconcilerOptions::on_row_moved), as `run`'s
  // progress table counts them; a test sets its baseline.
  progress::RowTally row_moves;
  // While true, tenants' key loads wait in `held_key_loads` (a slow disk, a long start-up)
  // until release_key_loads() runs them.
  bool hold_key_loads = false;
  std::vector<std::function<void()>> held_key_loads;
  void release_key_loads(std::size_t how_many = SIZE_MAX);  // the first `how_many` held, in order

 private:
  std::string credentials_dir_;
  std::uint64_t notifications_ = 0;
  Instant started_at_{};
  bool running_ = false;
};

}  // namespace callbackd::engine_test
