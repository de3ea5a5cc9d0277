#include "core/progress/progress_table.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "core/text.h"

namespace callbackd::progress {

std::optional<ProgressMode> progress_mode_from(std::string_view text) {
  if (text == "auto") return ProgressMode::automatic;
  if (text == "always") return ProgressMode::always;
  if (text == "never") return ProgressMode::never;
  return std::nullopt;
}

bool draws_table(ProgressMode mode, bool stderr_is_terminal) {
  return mode == ProgressMode::always || (mode == ProgressMode::automatic && stderr_is_terminal);
}

bool colour_enabled(bool is_terminal, std::optional<std::string_view> term, std::optional<std::string_view> no_color) {
  if (!is_terminal) return false;
  if (no_color && !no_color->empty()) return false;
  return term && !term->empty() && *term != "dumb";
}

long long desired_rows(const TenantProgress& t) {
  long long n = 0;
  for (const auto& [state, rows] : t.by_state) n += rows;
  return n;
}

namespace {

long long rows_in(const TenantProgress& t, std::string_view state) {
  const auto it = t.by_state.find(std::string(state));
  return it == t.by_state.end() ? 0 : it->second;
}

}  // namespace

long long remaining_rows(const TenantProgress& t) {
  long long n = desired_rows(t);
  for (const auto& column : kStateColumns) n -= rows_in(t, column.state);
  return n;
}

std::optional<std::chrono::milliseconds> eta(long long remaining, double rate_per_minute) {
  if (!(rate_per_minute > 0)) return std::nullopt;
  const double seconds = std::ceil(static_cast<double>(std::max(remaining, 0LL)) * 60.0 / rate_per_minute);
  return std::chrono::milliseconds{static_cast<long long>(seconds) * 1000};
}

namespace {

// Column widths, each cell right-aligned with its leading space included; 80 columns with
// every optional column shown.
constexpr std::size_t kTenantWidth = 15;
constexpr std::size_t kDesiredWidth = 8;
constexpr std::size_t kRemainingWidth = 10;
constexpr std::size_t kRateWidth = 9;
constexpr std::size_t kEtaWidth = 8;
constexpr std::size_t state_width(const StateColumn& c) { return std::max<std::size_t>(c.header.size() + 1, 7); }

constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kYellow = "\x1b[33m";
constexpr std::string_view kGreen = "\x1b[32m";
constexpr std::string_view kReset = "\x1b[0m";

// One line of the table before formatting: a tenant, the summary of the rest, or the total.
struct Line {
  std::string label;
  TenantProgress counts;
  std::string eta;
  bool emphasis = false;  // header and total
};

std::string eta_text(const TenantProgress& t) {
  if (remaining_rows(t) == 0) return "done";
  if (!t.not_sending.empty()) return t.not_sending;
  const auto d = eta(remaining_rows(t), t.rate_per_minute);
  return d ? human_duration(*d) : "-";
}

// Several tenants as one line: their counts and rates summed; they send in parallel, so the
// ETA is the longest of theirs (at least the global cap's time for all their rows).
Line aggregate(std::string label, std::span<const TenantProgress> tenants, double global_rate_per_second) {
  Line line{std::move(label), {}, "", false};
  std::optional<std::chrono::milliseconds> longest;
  long long sending_remaining = 0;
  for (const auto& t : tenants) {
    for (const auto& [state, rows] : t.by_state) line.counts.by_state[state] += rows;
    const long long remaining = remaining_rows(t);
    if (t.not_sending.empty()) line.counts.rate_per_minute += t.rate_per_minute;
    if (remaining == 0) continue;
    if (!t.not_sending.empty() || !(t.rate_per_minute > 0)) continue;  // waits for an operator, not time
    sending_remaining += remaining;
    longest = std::max(longest.value_or(std::chrono::milliseconds{0}), *eta(remaining, t.rate_per_minute));
  }
  if (longest && global_rate_per_second > 0)
    longest = std::max(*longest, *eta(sending_remaining, global_rate_per_second * 60.0));
  if (remaining_rows(line.counts) == 0)
    line.eta = "done";
  else if (longest)
    line.eta = human_duration(*longest);
  else
    line.eta = "-";
  return line;
}

std::string pad_left(std::string_view text, std::size_t width) {
  std::string out(width > text.size() ? width - text.size() : 0, ' ');
  out += text;
  return out;
}

std::string pad_right(std::string_view text, std::size_t width) {
  std::string out(text);
  if (out.size() < width) out.append(width - out.size(), ' ');
  return out;
}

// A label that fits its column with a space to spare; a longer one is cut and marked "..".
std::string fit_label(std::string_view label) {
  constexpr std::size_t fits = kTenantWidth - 1;
  if (label.size() <= fits) return std::string(label);
  return std::string(label.substr(0, fits - 2)) + "..";
}

std::string paint(std::string cell, std::string_view colour, bool on) {
  if (!on || colour.empty()) return cell;
  return std::string(colour) + cell + std::string(kReset);
}

std::string rate_text(const TenantProgress& t) {
  if (!t.not_sending.empty()) return "-";
  return std::to_string(std::llround(t.rate_per_minute));
}

}  // namespace

std::vector<std::string> render_table(std::vector<TenantProgress> tenants, const TableOptions& options) {
  std::vector<StateColumn> columns;
  for (const auto& column : kStateColumns) {
    const bool used = std::any_of(tenants.begin(), tenants.end(),
                                  [&](const TenantProgress& t) { return rows_in(t, column.state) > 0; });
    if (!column.optional || used) columns.push_back(column);
  }
  std::size_t table_width = kTenantWidth + kDesiredWidth + kRemainingWidth + kRateWidth + kEtaWidth;
  for (const auto& c : columns) table_width += state_width(c);
  // Too narrow: plain text cut at the edge (escape sequences cannot be cut safely).
  const bool colour = options.colour && table_width <= options.width;

  std::stable_sort(tenants.begin(), tenants.end(), [](const TenantProgress& a, const TenantProgress& b) {
    const long long ra = remaining_rows(a), rb = remaining_rows(b);
    if (ra != rb) return ra > rb;
    const long long da = desired_rows(a), db = desired_rows(b);
    if (da != db) return da > db;
    return a.tenant_id < b.tenant_id;
  });

  std::vector<std::string> out;
  auto emit = [&](std::string line) {
    if (line.size() > options.width && !colour) line.resize(options.width);
    out.push_back(std::move(line));
  };

  std::string header = pad_right("tenant", kTenantWidth) + pad_left("desired", kDesiredWidth);
  for (const auto& c : columns) header += pad_left(c.header, state_width(c));
  header += pad_left("remaining", kRemainingWidth) + pad_left("rate/min", kRateWidth) + pad_left("ETA", kEtaWidth);
  emit(paint(header, kBold, colour));

  auto format = [&](const Line& line) {
    // Cells of a bold line stay plain: a cell's reset would end the bold midway.
    const bool cell_colour = colour && !line.emphasis;
    std::string s = pad_right(fit_label(line.label), kTenantWidth);
    s += pad_left(std::to_string(desired_rows(line.counts)), kDesiredWidth);
    for (const auto& c : columns) {
      const long long n = rows_in(line.counts, c.state);
      const std::string_view colour_of = n == 0                 ? std::string_view{}
                                         : c.state == "failed"  ? kRed
                                         : c.state == "invalid" ? kYellow
                                                                : std::string_view{};
      s += paint(pad_left(std::to_string(n), state_width(c)), colour_of, cell_colour);
    }
    s += pad_left(std::to_string(remaining_rows(line.counts)), kRemainingWidth);
    s += pad_left(rate_text(line.counts), kRateWidth);
    s += paint(pad_left(line.eta, kEtaWidth), line.eta == "done" ? kGreen : std::string_view{}, cell_colour);
    return line.emphasis ? paint(s, kBold, colour) : s;
  };

  const std::size_t shown = std::min(tenants.size(), options.max_tenants);
  for (std::size_t i = 0; i < shown; ++i) emit(format(Line{tenants[i].tenant_id, tenants[i], eta_text(tenants[i])}));
  const std::span<const TenantProgress> all(tenants);
  if (shown < tenants.size())
    emit(format(aggregate("+" + std::to_string(tenants.size() - shown) + " more", all.subspan(shown),
                          options.global_rate_per_second)));
  Line total = aggregate("total", all, options.global_rate_per_second);
  total.emphasis = true;
  emit(format(total));
  return out;
}

std::string redraw(std::size_t drawn_lines, const std::vector<std::string>& log_lines,
                   const std::vector<std::string>& table) {
  std::string out;
  // Up to the table's first line, to its column 0, and erase from there to the end of the screen.
  if (drawn_lines > 0) out += "\r\x1b[" + std::to_string(drawn_lines) + "A\x1b[J";
  for (const auto& line : log_lines) out += line + "\n";
  for (const auto& line : table) out += line + "\n";
  return out;
}

}  // namespace callbackd::progress
