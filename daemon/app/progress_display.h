// The live progress table on a terminal (docs/cli.md, "Progress on a terminal"): `run`'s,
// refreshed every second on the daemon's io_context from the daemon's own state, and the
// frames of `status --watch`, from the database. The table itself is drawn by the pure
// core/progress/progress_table.h; this file gathers its numbers and puts it on the console.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "app/console.h"
#include "core/progress/progress_table.h"
#include "core/progress/row_tally.h"
#include "core/reconcile/row_decision.h"
#include "engine/reconciler.h"
#include "pg/inspect.h"

namespace callbackd::app {

// A tenant's line from the database's counts. The ETA is at the tenant's rate_per_minute (what
// its pacer sends at), but only while requests for it were sent in the last minute: rows left
// with nothing sent say "idle" (no daemon sends them, or they wait for a retry), not a time.
progress::TenantProgress tenant_progress_from(const pg::TenantProgressCounts& counts);

// Colour on `console` (core/progress: a colour terminal, NO_COLOR unset or empty).
bool console_colour(const Console& console);

// The lines to show: `title`, then the table sized to the console (its width; as many tenant
// lines as fit its height, up to 20).
std::vector<std::string> progress_frame(const std::string& title, std::vector<progress::TenantProgress> tenants,
                                        const Console& console, double global_rate_per_second);

// `run`'s table. Counts: one read of the database at start (set_baseline), then every row
// move the reconciler reports (row_moved); rates and pauses from the reconciler's snapshot
// (its pacers): no query per refresh.
class ProgressDisplay {
 public:
  ProgressDisplay(boost::asio::io_context& io, Console& console, double global_rate_per_second);
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  void set_baseline(const std::vector<pg::TenantProgressCounts>& counts);
  // Draws now and about once a second after, until finish().
  void start(const engine::Reconciler& reconciler);
  void row_moved(const std::string& tenant_id, reconcile::RowState from, reconcile::RowState to);
  // The run is over: the last table (from `final_counts`, read after everything was recorded,
  // or from the daemon's own counts when empty) stays on screen; later output goes below it.
  void finish(const std::vector<pg::TenantProgressCounts>& final_counts);

 private:
  void refresh();
  void draw(const std::vector<progress::TenantProgress>& tenants);
  std::vector<progress::TenantProgress> own_counts() const;

  boost::asio::steady_timer timer_;
  Console& console_;
  double global_rate_per_second_;
  const engine::Reconciler* reconciler_ = nullptr;
  progress::RowTally tally_;
  std::chrono::steady_clock::time_point started_;
  bool finished_ = false;
};

}  // namespace callbackd::app
