// `callbackd run [--exit-when-idle]`: the daemon (with the flag: a batch job whose exit status
// says whether every row of every tenant in mode apply is in sync, batch_result.h). Start-up checks everything that
// would make running pointless (config, database, schema version) and exits 78 naming the problem; a tenant whose keys
// are bad is paused, not fatal. Then: one io_context thread for the network and the run loop, one thread for the
// database, one for LISTEN.
//
// Signals: SIGTERM/SIGINT stop claiming, let requests in flight finish within
// reconciler.shutdown_grace, record what is known and exit 0; a second one exits at once
// (status 1). SIGHUP re-reads the config: a valid one is applied (log level, backoff,
// intervals, credentials), an invalid one is logged and the old one kept.
//
// `--progress=auto|always|never`: with a terminal on stderr (auto) a live per-tenant table
// (app/progress_display.h) sits below the log lines; at exit its last state stays on screen,
// above the batch's summary line. Without one, the output is the log lines alone.
#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <iostream>
#include <thread>

#include "app/commands.h"
#include "app/logging.h"
#include "app/operations.h"
#include "app/progress_display.h"
#include "app/report_text.h"
#include "core/config.h"
#include "core/credentials.h"
#include "core/reconcile/backoff.h"
#include "core/reconcile/batch_result.h"
#include "engine/db_worker.h"
#include "engine/reconciler.h"
#include "http/https_client.h"
#include "pg/conninfo.h"
#include "pg/inspect.h"
#include "pg/migrator.h"
#include "pg/reconcile_store.h"

namespace callbackd::app {

namespace asio = boost::asio;

namespace {

std::string instance_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  // The random part keeps two processes apart that share a host name and a pid (containers,
  // pid reuse after a restart): claims and tenant leases are keyed by this name.
  std::random_device random;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", random() & 0xffffu);
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + suffix;
}

// Refuses to run against a schema this binary was not built for: `migrate` first.
void check_schema(const Config& config) {
  const pg::SchemaStatus schema = pg::schema_status(config.database, pg::embedded_migrations());
  std::vector<Problem> problems = schema.problems;
  if (!schema.pending.empty())
    problems.push_back({"database " + pg::describe_conninfo(config.database.url),
                        "schema version " + std::to_string(schema.database_version) + ", this binary needs " +
                            std::to_string(schema.binary_version),
                        "run `callbackd migrate`"});
  if (!problems.empty()) throw StartupError(problems);
}

// Waits until `deadline` or until `stopping` is set, whichever comes first. Polls the flag
// every 50 ms: shutdown must not wait out a reconnect backoff of up to 10 s.
void wait_unless_stopping(reconcile::Instant deadline, const std::atomic<bool>& stopping) {
  constexpr auto kStopCheck = std::chrono::milliseconds{50};
  for (auto now = reconcile::Clock::now(); now < deadline && !stopping; now = reconcile::Clock::now())
    std::this_thread::sleep_for(std::min<reconcile::Duration>(deadline - now, kStopCheck));
}

// The LISTEN connection lives on its own thread; notifications are posted to the run loop.
// A lost connection is retried on the daemon's backoff (core/reconcile/backoff.h, capped
// exponential with jitter), so that many instances losing one server do not reconnect in step.
void listen_loop(const DatabaseConfig& db, asio::io_context& io, engine::Reconciler& reconciler,
                 const std::atomic<bool>& stopping) {
  const reconcile::RetryPolicy reconnect{std::chrono::milliseconds{250}, std::chrono::seconds{10}};
  std::mt19937_64 random{std::random_device{}()};
  std::uniform_real_distribution<double> uniform01{0.0, 1.0};
  int failures = 0;
  while (!stopping) {
    try {
      pg::Listener listener(db);
      if (failures > 0) {
        failures = 0;
        logging::info("listen_reconnected");
        asio::post(io, [&reconciler] { reconciler.on_notifications_missed(); });
      }
      while (!stopping)
        for (auto& n : listener.wait(std::chrono::milliseconds{250}))
          asio::post(io, [&reconciler, n] { reconciler.on_notification(n.channel, n.tenant_id); });
    } catch (const std::exception& e) {
      ++failures;
      const reconcile::Duration retry_in = reconcile::retry_backoff(reconnect, failures, uniform01(random));
      logging::warn(
          "listen_failed",
          {{"error", e.what()}, {"retry_in_ms", std::chrono::duration_cast<std::chrono::milliseconds>(retry_in)}});
      // The poll interval covers the gap until the listener is back.
      wait_unless_stopping(reconcile::Clock::now() + retry_in, stopping);
    }
  }
}

// The progress table's last state, from the database after everything was recorded (exact,
// whatever happened during the run); the daemon's own counts when the database cannot say.
void finish_progress(ProgressDisplay& display, const DatabaseConfig& database) {
  std::vector<pg::TenantProgressCounts> final_counts;
  try {
    final_counts = pg::ProgressReader(database).read();
  } catch (const DatabaseError& e) {
    logging::warn("progress_final_counts_unread",
                  {{"error", e.what()}, {"note", "the table shows the run's own counts"}});
  }
  display.finish(final_counts);
}

// `--exit-when-idle` went idle: is the job done (reconcile::judge_batch)? One summary line on
// stdout, read from callbackd.sync_status after everything was recorded; the exit status.
int batch_exit_status(const DatabaseConfig& database) {
  pg::Inspector inspector(database);
  std::vector<reconcile::TenantRowsAfterRun> tenants;
  for (const auto& s : inspector.status()) {
    reconcile::TenantRowsAfterRun t;
    t.tenant_id = printable(s.tenant_id);
    t.mode = s.mode;
    if (s.pause) t.paused_by_error = printable(s.pause->error_code.empty() ? "-" : s.pause->error_code);
    t.by_state = s.by_state;
    for (const auto& e : s.by_error) t.by_error.push_back({e.state, printable(e.error_code), e.rows});
    tenants.push_back(std::move(t));
  }
  const reconcile::BatchResult result = reconcile::judge_batch(tenants);
  std::cout << result.summary << std::endl;
  return result.exit_status;
}

}  // namespace

int run_daemon(const CliRequest& req) {
  Config config = load_config(req.config_path);
  init_logging(config.log);
  if (auto problem = credentials_dir_problem(config.credentials_dir, config.source_path)) throw StartupError(*problem);
  if (auto problem = platform_ca_problem(config)) throw StartupError(*problem);
  check_schema(config);

  asio::io_context io;
  // The progress table: its counts read once now, before anything is sent; from then on the
  // reconciler's own row moves keep them (no query per refresh).
  std::unique_ptr<ProgressDisplay> progress;
  const auto progress_mode = *progress::progress_mode_from(req.option("--progress", "auto"));
  if (progress::draws_table(progress_mode, Console::stderr_console().is_terminal())) {
    progress =
        std::make_unique<ProgressDisplay>(io, Console::stderr_console(), config.reconciler.global_rate_per_second);
    try {
      progress->set_baseline(pg::ProgressReader(config.database).read());
    } catch (const DatabaseError& e) {
      // The table is a view, not the job: it starts from what the run itself moves.
      logging::warn("progress_baseline_unread",
                    {{"error", e.what()}, {"note", "the table counts only the rows this run moves"}});
    }
  }
  http::HttpsClient client(io, config.wechatpay);
  const std::string instance = instance_name();
  auto database_thread = [&config, &instance](std::string application_name) {
    return std::make_unique<engine::DbWorker>(
        [database = config.database, instance, application_name]() -> std::unique_ptr<engine::Store> {
          return std::make_unique<pg::ReconcileStore>(database, instance, probe_pid, application_name);
        },
        [application_name](const std::string& message) {
          logging::error("database_error", {{"connection", application_name}, {"error", message}});
        });
  };
  const auto db = database_thread("callbackd");
  // The status page's reads and the row counts' bookkeeping (migrations/0014): a thread and a
  // connection of their own, so that neither a page's reads nor folding a bulk load's changes
  // ever holds up the reconciler's claims and records.
  const auto page_db = database_thread("callbackd status page");
  // systemd notify, metrics and health (app/operations.h): READY=1 once the tenants and their
  // keys were loaded, the watchdog from this io_context, /metrics on metrics.listen.
  Operations ops(io, config, client, *db, *page_db, instance);
  engine::ReconcilerOptions options;
  options.exit_when_idle = req.has_flag("--exit-when-idle");
  options.instance = instance;
  options.on_tenants_loaded = [&ops] { ops.tenants_loaded(); };
  options.on_attempt = [&ops](const engine::AttemptObserved& a) { ops.attempt_finished(a); };
  if (progress)
    options.on_row_moved = [display = progress.get()](const std::string& tenant_id, reconcile::RowState from,
                                                      reconcile::RowState to) {
      display->row_moved(tenant_id, from, to);
    };
  engine::SystemClock clock;
  engine::Reconciler reconciler(io, config, clock, client, *db, std::move(options));
  ops.start(reconciler);
  if (progress) progress->start(reconciler);

  std::atomic<bool> stopping{false};
  std::thread listener([&] { listen_loop(config.database, io, reconciler, stopping); });

  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  int stop_signals = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                             int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      ops.reloading();
      try {
        Config fresh = load_config(req.config_path);
        init_logging(fresh.log);
        reconciler.reload(fresh);
        ops.reloaded(fresh);
        logging::info("reloaded", {{"config", req.config_path}});
      } catch (const StartupError& e) {
        ops.reloaded(config);
        logging::error(
            "reload_refused",
            {{"config", req.config_path}, {"error", e.what()}, {"note", "the previous config stays in force"}});
      }
    } else if (++stop_signals == 1) {
      logging::info("signal", {{"signal", signal}, {"action", "drain"}});
      ops.stopping();
      reconciler.stop();
    } else {
      logging::warn("signal", {{"signal", signal}, {"action", "exit_now"}});
      std::_Exit(kExitFailure);
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  logging::info("started", {{"instance", instance},
                            {"version", CALLBACKD_VERSION},
                            {"wechatpay", config.wechatpay.base_url},
                            {"database", pg::describe_conninfo(config.database.url)}});
  std::exception_ptr failure;
  asio::co_spawn(io, reconciler.run(), [&](std::exception_ptr e) {
    failure = e;
    ops.stopping();
    ops.stop();
    stopping = true;
    signals.cancel();
    client.close_idle();
    io.stop();
  });
  io.run();
  stopping = true;
  listener.join();
  db->stop();
  page_db->stop();
  if (progress) finish_progress(*progress, config.database);
  if (failure) std::rethrow_exception(failure);
  // A batch judges what it leaves whether it went idle or was stopped by SIGTERM/SIGINT first:
  // a batch cut short by `timeout` or `systemctl stop` with rows unsent is not a success.
  if (options.exit_when_idle) return batch_exit_status(config.database);
  return 0;
}

}  // namespace callbackd::app
