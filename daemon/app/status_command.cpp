// `callbackd status`: per tenant, its mode and any pause, how many rows are in each state of
// callbackd.sync_status, which error codes hold rows back, and how long the oldest unsettled
// change has waited; rows held by the change budget with the hosts they would move from and to
// (migrations/0008). Read-only, one snapshot (pg/inspect.h). Exit 0, or 1 when the database
// cannot be read.
//
// `status --watch [--interval 2s]`: the progress table of `run` (app/progress_display.h) for
// a daemon that runs elsewhere, read with ONE statement per refresh (sql/progress_counts.sql)
// until SIGINT/SIGTERM (exit 0). On a terminal the table is redrawn in place; otherwise each
// refresh is printed below the last, with no control characters. A database that cannot be
// read is said in the title, and tried again at the next refresh.
#include <unistd.h>

#include <csignal>
#include <ctime>
#include <iostream>
#include <thread>

#include "app/commands.h"
#include "app/console.h"
#include "app/progress_display.h"
#include "app/report_text.h"
#include "core/config.h"
#include "core/reconcile/held_changes.h"
#include "pg/conninfo.h"
#include "pg/inspect.h"
#include "pg/migrator.h"

namespace callbackd::app {

namespace {

volatile std::sig_atomic_t watch_stopped = 0;
extern "C" void on_watch_signal(int) { watch_stopped = 1; }

std::string utc_clock() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

int watch_status(const Config& config, std::chrono::milliseconds interval) {
  struct sigaction action {};
  action.sa_handler = on_watch_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  Console console(STDOUT_FILENO);
  const bool live = console.is_terminal();
  std::unique_ptr<pg::ProgressReader> reader;
  std::vector<progress::TenantProgress> tenants;
  while (!watch_stopped) {
    std::string title = "callbackd status --watch: " + utc_clock() + " UTC, every " + human_duration(interval);
    try {
      if (!reader) reader = std::make_unique<pg::ProgressReader>(config.database);
      std::vector<progress::TenantProgress> fresh;
      for (const auto& c : reader->read()) fresh.push_back(tenant_progress_from(c));
      tenants = std::move(fresh);
    } catch (const DatabaseError& e) {
      reader.reset();  // a new connection at the next refresh; the last counts stay shown
      title += "; database unreachable: " + printable(e.what());  // one line, whatever libpq said
    }
    const auto frame = progress_frame(title, tenants, console, config.reconciler.global_rate_per_second);
    if (live) {
      console.show_table(frame);
    } else {
      for (const auto& line : frame) std::cout << line << "\n";
      std::cout << std::endl;
    }
    const auto next = std::chrono::steady_clock::now() + interval;
    while (!watch_stopped && std::chrono::steady_clock::now() < next)
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(next - std::chrono::steady_clock::now(),
                                                                                std::chrono::milliseconds{50}));
  }
  console.release_table();
  return 0;
}

}  // namespace

int run_status(const CliRequest& req) {
  const Config config = load_config(req.config_path);
  if (req.has_flag("--watch"))
    return watch_status(config, *duration_from_text(req.option("--interval", kDefaultWatchInterval)));
  if (req.options.count("--interval")) {
    std::cerr << "callbackd: status: --interval applies to --watch; add --watch or leave --interval out\n";
    return kExitUsage;
  }
  try {
    pg::Inspector inspector(config.database);
    const auto tenants = inspector.status();
    std::cout << "status: database " << pg::describe_conninfo(config.database.url) << ", " << tenants.size()
              << " tenant(s)\n";
    // The states of sync_status in the order a row moves through them.
    static const char* const kStates[] = {"in_sync", "pending", "held",    "retrying",
                                          "failed",  "invalid", "drifted", "paused"};
    for (const auto& t : tenants) {
      std::cout << "\ntenant " << printable(t.tenant_id) << "  mode " << tenant_mode_name(t.mode);
      if (t.pause) {
        std::cout << "  PAUSED by error " << printable(t.pause->error_code.empty() ? "-" : t.pause->error_code) << ": "
                  << printable(t.pause->reason) << " (next probe "
                  << (t.pause->probe_in.count() > 0 ? "in " + human_duration(t.pause->probe_in)
                                                    : std::string("due now"))
                  << ")";
      }
      std::cout << "\n";
      long long rows = 0;
      for (const auto& [state, n] : t.by_state) rows += n;
      std::cout << "  rows " << rows;
      bool first = true;
      for (const char* state : kStates) {
        auto it = t.by_state.find(state);
        if (it == t.by_state.end()) continue;
        std::cout << (first ? ": " : ", ") << state << " " << it->second;
        first = false;
      }
      std::cout << "\n";
      if (!t.by_error.empty()) {
        std::cout << "  errors:";
        bool first_error = true;
        for (const auto& e : t.by_error) {
          std::cout << (first_error ? " " : ", ") << printable(e.error_code) << " " << e.rows << " (" << e.state << ")";
          first_error = false;
        }
        std::cout << "\n";
      }
      if (!t.held_moves.empty()) {
        long long held = 0;
        for (const auto& m : t.held_moves) held += m.rows;
        std::cout << "  held by the change budget: " << reconcile::with_thousands(held)
                  << " row(s): " << reconcile::held_hosts_summary(t.held_moves) << "; approve: callbackd approve "
                  << printable(t.tenant_id) << " (or undo: docs/sql.md)\n";
      }
      if (t.certificate_mode) {
        // Certificate mode: what responses are verified with, and until when.
        std::cout << "  platform certificates:";
        if (t.platform_certificates.empty()) std::cout << " none yet (downloaded when first needed)";
        bool first_certificate = true;
        for (const auto& c : t.platform_certificates) {
          const std::time_t expires = std::chrono::system_clock::to_time_t(c.expires_at);
          std::tm tm{};
          gmtime_r(&expires, &tm);
          char date[32];
          std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
          std::cout << (first_certificate ? " " : ", ") << printable(c.serial) << " (expires " << date << ")";
          first_certificate = false;
        }
        std::cout << "\n";
      }
      std::cout << "  queue: " << t.queued << " entr" << (t.queued == 1 ? "y" : "ies");
      if (t.oldest_pending_change)
        std::cout << ", oldest pending change " << human_duration(*t.oldest_pending_change) << " old";
      std::cout << "\n";
    }
    return 0;
  } catch (const DatabaseError& e) {
    std::cerr << "callbackd: status: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace callbackd::app
