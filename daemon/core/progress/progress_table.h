// The progress table of `callbackd run` on a terminal and of `callbackd status --watch`
// (docs/cli.md, "Progress on a terminal"): per tenant the rows desired, in sync, failed,
// invalid, remaining, the rate per minute and an ETA, the busiest tenants first, a total line.
// Pure: the caller passes the counts, the rates, the terminal's size and whether to colour;
// nothing here reads a clock, the environment or a file descriptor. Never throws (beyond
// allocation).
//
// Where the numbers come from is the caller's business: `run` counts from its own state (a
// baseline read once at start plus the row moves it made, row_tally.h) and its pacers' rates;
// `status --watch` reads one grouped query per refresh.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd::progress {

// `--progress=auto|always|never` on `run`.
enum class ProgressMode { automatic, always, never };
std::optional<ProgressMode> progress_mode_from(std::string_view text);  // "auto", "always", "never"
// Whether `run` draws the table: auto draws only when stderr is a terminal (a pipe, a file or
// the journal get the log lines alone, exactly as without the table).
bool draws_table(ProgressMode mode, bool stderr_is_terminal);

// Colour only on a terminal that has colours (TERM set and not "dumb") and when NO_COLOR is
// unset or empty (https://no-color.org). nullopt: the variable is unset.
bool colour_enabled(bool is_terminal, std::optional<std::string_view> term, std::optional<std::string_view> no_color);

// One tenant as the table shows it.
struct TenantProgress {
  std::string tenant_id;                      // printable already (the caller escapes what came from SQL)
  std::map<std::string, long long> by_state;  // sync_status.state -> rows; desired is their sum
  // The rate the tenant's pacer sends at, per minute: what the ETA is computed from.
  double rate_per_minute = 0;
  // Why the tenant does not send ("paused", "observe", "CREDENTIALS_INVALID"); "" when it does.
  // Its ETA column says this instead of a time.
  std::string not_sending;
};

// The columns of settled rows: a state of sync_status each, in the table's order. A row in
// none of these states (pending, retrying, paused, ...) counts as remaining. `optional`
// columns are drawn only while some tenant has rows in that state (`held` comes with change
// budgets; on a schema without it the column never shows).
struct StateColumn {
  std::string_view header;
  std::string_view state;
  bool optional = false;
};
inline constexpr StateColumn kStateColumns[] = {
    {"in sync", "in_sync"},
    {"failed", "failed"},
    {"invalid", "invalid"},
    {"held", "held", true},
};

long long desired_rows(const TenantProgress& t);
long long remaining_rows(const TenantProgress& t);

// ceil(remaining * 60 s / rate); nullopt when the rate is not positive. The pacer spaces
// requests evenly at its rate, so this is the time the rows take from now, not an average of
// the past (which the start-up and any pause would skew).
std::optional<std::chrono::milliseconds> eta(long long remaining, double rate_per_minute);

struct TableOptions {
  std::size_t width = 80;        // columns of the terminal; lines never exceed it
  std::size_t max_tenants = 10;  // tenant lines before the rest is summarised in one line
  bool colour = false;
  // reconciler.global_rate_per_second (0: none): every tenant shares it, so the total ETA is at
  // least the total remaining at this rate.
  double global_rate_per_second = 0;
};

// The table's lines (no newlines, no cursor movement): a header, one line per tenant (most
// remaining rows first, then most desired, then by id), "+N more" summing the tenants beyond
// max_tenants, and the total line. Tenants run in parallel, so the total ETA is the longest
// tenant ETA (or the global cap's, when that is longer).
std::vector<std::string> render_table(std::vector<TenantProgress> tenants, const TableOptions& options);

// What a terminal is sent to replace a live table of `drawn_lines` lines (the cursor sits on
// the line below it) with `log_lines` (which scroll up and stay) and then `table` again. Lines
// must not be wider than the terminal: a wrapped line would break the count.
std::string redraw(std::size_t drawn_lines, const std::vector<std::string>& log_lines,
                   const std::vector<std::string>& table);

}  // namespace callbackd::progress
