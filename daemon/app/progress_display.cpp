#include "app/progress_display.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>

#include "app/report_text.h"

namespace callbackd::app {

using progress::TenantProgress;

namespace {
constexpr auto kRefresh = std::chrono::seconds{1};
// Lines besides the tenants': the title, the header, "+N more", the total, and the line the
// cursor rests on below the table (a frame as tall as the screen would scroll its first line
// away, and the next redraw could not reach it).
constexpr std::size_t kFrameLines = 5;
constexpr std::size_t kMaxTenantLines = 20;

std::optional<std::string_view> env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::optional<std::string_view>(v) : std::nullopt;
}

// Why a tenant does not send, in the ETA column's 8 characters.
std::string not_sending(TenantMode mode, bool paused_by_error) {
  if (mode == TenantMode::paused) return "paused";
  if (mode == TenantMode::observe) return "observe";
  if (paused_by_error) return "error";
  return "";
}
}  // namespace

TenantProgress tenant_progress_from(const pg::TenantProgressCounts& counts) {
  TenantProgress t;
  t.tenant_id = printable(counts.tenant_id);
  t.by_state = counts.by_state;
  t.rate_per_minute = counts.rate_per_minute;
  t.not_sending = not_sending(counts.mode, counts.pause_error_code.has_value());
  if (t.not_sending.empty() && counts.sent_last_minute == 0 && progress::remaining_rows(t) > 0) t.not_sending = "idle";
  return t;
}

bool console_colour(const Console& console) {
  return progress::colour_enabled(console.is_terminal(), env("TERM"), env("NO_COLOR"));
}

std::vector<std::string> progress_frame(const std::string& title, std::vector<TenantProgress> tenants,
                                        const Console& console, double global_rate_per_second) {
  const TerminalSize size = console.size();
  progress::TableOptions options;
  options.width = size.columns;
  options.max_tenants =
      std::clamp<std::size_t>(size.rows > kFrameLines ? size.rows - kFrameLines : 1, 1, kMaxTenantLines);
  options.colour = console_colour(console);
  options.global_rate_per_second = global_rate_per_second;
  std::vector<std::string> lines{title.substr(0, size.columns)};
  for (auto& line : progress::render_table(std::move(tenants), options)) lines.push_back(std::move(line));
  return lines;
}

ProgressDisplay::ProgressDisplay(boost::asio::io_context& io, Console& console, double global_rate_per_second)
    : timer_(io),
      console_(console),
      global_rate_per_second_(global_rate_per_second),
      started_(std::chrono::steady_clock::now()) {}

ProgressDisplay::~ProgressDisplay() {
  timer_.cancel();
  console_.release_table();
}

void ProgressDisplay::set_baseline(const std::vector<pg::TenantProgressCounts>& counts) {
  for (const auto& c : counts) tally_.set_baseline(c.tenant_id, c.by_state);
}

void ProgressDisplay::start(const engine::Reconciler& reconciler) {
  reconciler_ = &reconciler;
  refresh();
}

void ProgressDisplay::row_moved(const std::string& tenant_id, reconcile::RowState from, reconcile::RowState to) {
  tally_.moved(tenant_id, reconcile::row_state_name(from), reconcile::row_state_name(to));
}

void ProgressDisplay::refresh() {
  if (finished_) return;
  draw(own_counts());
  timer_.expires_after(kRefresh);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) refresh();
  });
}

void ProgressDisplay::draw(const std::vector<TenantProgress>& tenants) {
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  int in_flight = 0;
  if (reconciler_)
    for (const auto& t : reconciler_->snapshot()) in_flight += t.in_flight;
  // Whole seconds ("0s", not "350ms"): the title changes once a second, with the table.
  const std::string seconds = elapsed < std::chrono::seconds{1}
                                  ? "0s"
                                  : human_duration(std::chrono::duration_cast<std::chrono::seconds>(elapsed));
  const std::string title = "callbackd run: " + seconds + " elapsed, " + std::to_string(in_flight) + " in flight";
  console_.show_table(progress_frame(title, tenants, console_, global_rate_per_second_));
}

std::vector<TenantProgress> ProgressDisplay::own_counts() const {
  std::vector<TenantProgress> out;
  std::set<std::string> seen;
  if (reconciler_) {
    for (const auto& s : reconciler_->snapshot()) {
      TenantProgress t;
      t.tenant_id = printable(s.tenant_id);
      t.by_state = tally_.counts(s.tenant_id);
      t.rate_per_minute = s.effective_rate_per_minute;
      t.not_sending = not_sending(s.mode, s.paused_by_error);
      if (t.not_sending.empty() && !s.sends_here) t.not_sending = "not here";
      out.push_back(std::move(t));
      seen.insert(s.tenant_id);
    }
  }
  // Tenants of the baseline the reconciler has not loaded (yet, or deleted meanwhile).
  for (const auto& [id, counts] : tally_.all()) {
    if (seen.count(id)) continue;
    TenantProgress t;
    t.tenant_id = printable(id);
    t.by_state = counts;
    t.not_sending = "-";
    out.push_back(std::move(t));
  }
  return out;
}

void ProgressDisplay::finish(const std::vector<pg::TenantProgressCounts>& final_counts) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  if (final_counts.empty()) {
    draw(own_counts());
  } else {
    std::vector<TenantProgress> tenants;
    for (const auto& c : final_counts) tenants.push_back(tenant_progress_from(c));
    draw(tenants);
  }
  console_.release_table();
}

}  // namespace callbackd::app
