// What operators and systemd see of a running daemon (docs/operations.md): the systemd notify
// protocol (READY, STATUS, WATCHDOG, RELOADING, STOPPING), the metrics registry and its HTTP
// endpoint (/metrics, /healthz, /readyz), and the periodic chores that feed them (the
// per-tenant queue query, log repeat summaries). Everything runs on the daemon's io_context
// thread; nothing here decides anything about sending.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "app/metrics_server.h"
#include "core/config.h"
#include "core/metrics/registry.h"
#include "core/status/page.h"
#include "engine/db_worker.h"
#include "engine/reconciler.h"
#include "http/https_client.h"

namespace callbackd::app {

class Operations {
 public:
  // `instance` is this daemon's name ("host:pid"), shown on the status page. `db` is the
  // reconciler's database thread (the metrics' queue query runs there); `page_db` a thread and
  // connection of the status page's own, so a page load never delays a claim or a record (the
  // row counts' folds run there too).
  Operations(boost::asio::io_context& io, const Config& config, http::HttpsClient& client, engine::DbWorker& db,
             engine::DbWorker& page_db, std::string instance);
  ~Operations();
  Operations(const Operations&) = delete;
  Operations& operator=(const Operations&) = delete;

  // Starts the timers (watchdog at half of $WATCHDOG_USEC, heartbeat, STATUS, queue query) and
  // the metrics server (metrics.listen; "" = none). Throws StartupError when it cannot bind.
  void start(const engine::Reconciler& reconciler);
  // Stops timers and the server (the run loop ended).
  void stop();

  // Reconciler hooks.
  void tenants_loaded();  // the first call sends READY=1
  void attempt_finished(const engine::AttemptObserved& attempt);

  // SIGHUP: RELOADING=1 (with MONOTONIC_USEC) before, READY=1 after (applied or refused).
  void reloading();
  void reloaded(const Config& config);
  // SIGTERM/SIGINT or --exit-when-idle: STOPPING=1.
  void stopping();

  std::string metrics_address() const;  // "" when off
  std::string render_metrics();
  // The status page for a GET `target` (core/status/page.h): what the database says (read on
  // page_db, cached 2 s per page, its scans longer when they are slow) with what this daemon
  // knows now.
  boost::asio::awaitable<HtmlPage> status_page(std::string target);

 private:
  void tick();
  void watchdog_tick();
  void query_queues();
  void fold_row_counts();
  void refresh_gauges();
  std::string status_line() const;
  status::Live live_view() const;
  Probe health() const;
  Probe ready() const;

  boost::asio::io_context& io_;
  Config config_;
  http::HttpsClient& client_;
  engine::DbWorker& db_;
  engine::DbWorker& page_db_;
  const engine::Reconciler* reconciler_ = nullptr;
  metrics::Registry registry_;
  std::unique_ptr<MetricsServer> server_;

  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer watchdog_timer_;
  std::optional<std::chrono::microseconds> watchdog_;
  std::chrono::steady_clock::time_point heartbeat_;
  std::chrono::steady_clock::time_point next_status_{};
  std::chrono::steady_clock::time_point next_queue_query_{};
  std::chrono::steady_clock::time_point next_fold_{};

  bool ready_sent_ = false;
  bool tenants_loaded_ = false;
  bool stopping_ = false;
  bool queue_query_in_flight_ = false;
  bool fold_in_flight_ = false;
  std::string fold_error_;
  std::optional<std::chrono::steady_clock::time_point> database_ok_at_;
  std::string database_error_;
  struct Queue {
    long long queued = 0;
    long long held = 0;
    std::optional<std::chrono::milliseconds> oldest;
  };
  std::map<std::string, Queue> queues_;
  // The status page's database answers, by page (status::Route::key), for kPageCacheFor:
  // however often a page is loaded, its queries run at most once per that period.
  struct CachedView {
    std::chrono::steady_clock::time_point read_at;
    status::DatabaseView view;
  };
  std::map<std::string, CachedView> page_cache_;
  // The last answer with scans per page, reused while younger than status::scans_reused_for
  // what they took: a page of a million rows counts them at most every ~50 s however often it
  // is loaded.
  std::map<std::string, CachedView> scans_cache_;
  int page_queries_in_flight_ = 0;
  std::string instance_;
  std::shared_ptr<bool> alive_;
};

}  // namespace callbackd::app
