// The progress table of `run` on a terminal and of `status --watch` (core/progress): its
// layout at 80 columns, a hundred tenants, colour, the ETA maths and the terminal redraw.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/progress/progress_table.h"
#include "core/progress/row_tally.h"

using namespace callbackd::progress;
using std::chrono::milliseconds;

namespace {

TenantProgress tenant(std::string id, long long in_sync, long long pending, long long failed = 0, long long invalid = 0,
                      double rate = 1000) {
  TenantProgress t;
  t.tenant_id = std::move(id);
  t.by_state = {{"in_sync", in_sync}, {"pending", pending}, {"failed", failed}, {"invalid", invalid}};
  t.rate_per_minute = rate;
  return t;
}

bool has_escape(const std::vector<std::string>& lines) {
  return std::any_of(lines.begin(), lines.end(), [](const std::string& l) { return l.find('\x1b') != l.npos; });
}

}  // namespace

TEST_CASE("progress: the table at 80 columns, one line per tenant and a total", "[progress]") {
  const auto lines = render_table({tenant("bravo", 100, 230, 2, 1, 500), tenant("acme", 300, 180, 0, 0, 500)}, {});
  const std::vector<std::string> expected = {
      "tenant          desired in sync failed invalid remaining rate/min     ETA",
      "bravo               333     100      2       1       230      500     28s",
      "acme                480     300      0       0       180      500     22s",
      "total               813     400      2       1       410     1000     28s",
  };
  CHECK(lines == expected);
  for (const auto& l : lines) CHECK(l.size() <= 80);
}

TEST_CASE("progress: remaining is every row not in sync, failed, invalid or held", "[progress]") {
  TenantProgress t;
  t.by_state = {{"in_sync", 5}, {"pending", 3}, {"retrying", 2}, {"paused", 4}, {"failed", 1}, {"held", 6}};
  CHECK(desired_rows(t) == 21);
  CHECK(remaining_rows(t) == 9);
}

TEST_CASE("progress: the held column shows only while rows are held", "[progress]") {
  auto without = render_table({tenant("acme", 1, 1)}, {});
  CHECK(without[0].find("held") == std::string::npos);
  auto t = tenant("acme", 1, 1);
  t.by_state["held"] = 7;
  auto with = render_table({t}, {});
  CHECK(with[0] == "tenant          desired in sync failed invalid   held remaining rate/min     ETA");
  CHECK(with[1] == "acme                  9       1      0       0      7         1     1000      1s");
  CHECK(with[0].size() == 80);  // the widest the table gets
  for (const auto& l : with) CHECK(l.size() <= 80);
}

TEST_CASE("progress: a hundred tenants, the busiest first and the rest in one line", "[progress]") {
  std::vector<TenantProgress> tenants;
  for (int i = 0; i < 100; ++i) tenants.push_back(tenant("t" + std::to_string(i), 10, i, 0, 0, 60));
  TableOptions options;
  options.max_tenants = 5;
  const auto lines = render_table(tenants, options);
  REQUIRE(lines.size() == 1 + 5 + 1 + 1);  // header, 5 tenants, the rest, total
  CHECK(lines[1].starts_with("t99 "));
  CHECK(lines[5].starts_with("t95 "));
  // The other 95: 950 in sync, 0+1+...+94 = 4465 remaining, rates summed, the longest ETA
  // (t94: 94 rows at 60/min).
  CHECK(lines[6] == "+95 more           5415     950      0       0      4465     5700   1m34s");
  CHECK(lines[7] == "total              5950    1000      0       0      4950     6000   1m39s");
  for (const auto& l : lines) CHECK(l.size() <= 80);
}

TEST_CASE("progress: ties keep an order: most desired first, then by id", "[progress]") {
  const auto lines = render_table({tenant("b", 0, 0), tenant("a", 0, 0), tenant("c", 5, 0)}, {});
  CHECK(lines[1].starts_with("c "));
  CHECK(lines[2].starts_with("a "));
  CHECK(lines[3].starts_with("b "));
}

TEST_CASE("progress: a long tenant id is cut to its column", "[progress]") {
  const auto lines = render_table({tenant("a-very-long-tenant-name", 1, 0)}, {});
  CHECK(lines[1].starts_with("a-very-long-.. "));
  CHECK(lines[1].size() == lines[0].size());
}

TEST_CASE("progress: narrower than the table, lines are cut and never coloured", "[progress]") {
  TableOptions options;
  options.width = 40;
  options.colour = true;
  const auto lines = render_table({tenant("acme", 1, 1, 1)}, options);
  for (const auto& l : lines) CHECK(l.size() <= 40);
  CHECK_FALSE(has_escape(lines));
}

TEST_CASE("progress: colour marks the header, failures, invalid rows and done", "[progress]") {
  TableOptions options;
  options.colour = true;
  const auto lines = render_table({tenant("acme", 5, 0, 1, 1)}, options);
  CHECK(lines[0].starts_with("\x1b[1mtenant"));
  CHECK(lines[1].find("\x1b[31m      1\x1b[0m") != std::string::npos);   // failed, red
  CHECK(lines[1].find("\x1b[33m       1\x1b[0m") != std::string::npos);  // invalid, yellow
  CHECK(lines[1].find("\x1b[32m    done\x1b[0m") != std::string::npos);
  options.colour = false;
  CHECK_FALSE(has_escape(render_table({tenant("acme", 5, 0, 1, 1)}, options)));
}

TEST_CASE("progress: colour only on a colour terminal without NO_COLOR", "[progress]") {
  CHECK(colour_enabled(true, "xterm-256color", std::nullopt));
  CHECK(colour_enabled(true, "xterm", ""));  // NO_COLOR set but empty: no-color.org says ignore it
  CHECK_FALSE(colour_enabled(true, "xterm", "1"));
  CHECK_FALSE(colour_enabled(true, "dumb", std::nullopt));
  CHECK_FALSE(colour_enabled(true, std::nullopt, std::nullopt));
  CHECK_FALSE(colour_enabled(false, "xterm", std::nullopt));
}

TEST_CASE("progress: --progress modes", "[progress]") {
  CHECK(progress_mode_from("auto") == ProgressMode::automatic);
  CHECK(progress_mode_from("always") == ProgressMode::always);
  CHECK(progress_mode_from("never") == ProgressMode::never);
  CHECK_FALSE(progress_mode_from("yes"));
  CHECK(draws_table(ProgressMode::automatic, true));
  CHECK_FALSE(draws_table(ProgressMode::automatic, false));
  CHECK(draws_table(ProgressMode::always, false));
  CHECK_FALSE(draws_table(ProgressMode::never, true));
}

TEST_CASE("progress: the ETA is remaining rows at the pacer's rate", "[progress]") {
  CHECK(eta(1000, 1000) == milliseconds{60'000});
  CHECK(eta(50'000, 1000) == milliseconds{3'000'000});  // 50,000 rows at 1,000 a minute: 50 minutes
  CHECK(eta(1, 1000) == milliseconds{1'000});           // rounded up to whole seconds
  CHECK(eta(0, 1000) == milliseconds{0});
  CHECK(eta(250, 500) == milliseconds{30'000});
  CHECK(eta(100, 437.5) == milliseconds{14'000});  // a pacer slowed by a 429: 13.7 s, rounded up
  CHECK_FALSE(eta(10, 0));
  CHECK_FALSE(eta(10, -1));
}

TEST_CASE("progress: tenants run in parallel, the total ETA is the longest, or the global cap's", "[progress]") {
  // 600 rows at 600/min (1 min) and 120 at 60/min (2 min): 2 minutes, not 3 and not 720/660.
  const auto parallel = render_table({tenant("a", 0, 600, 0, 0, 600), tenant("b", 0, 120, 0, 0, 60)}, {});
  CHECK(parallel.back().ends_with("2m00s"));
  TableOptions capped;
  capped.global_rate_per_second = 2;  // 720 rows at 120/min: 6 minutes
  CHECK(
      render_table({tenant("a", 0, 600, 0, 0, 600), tenant("b", 0, 120, 0, 0, 60)}, capped).back().ends_with("6m00s"));
}

TEST_CASE("progress: a tenant that does not send says why instead of an ETA", "[progress]") {
  auto paused = tenant("held-back", 0, 40);
  paused.not_sending = "paused";
  const auto lines = render_table({paused, tenant("acme", 0, 60, 0, 0, 60)}, {});
  CHECK(lines[1] == "acme                 60       0      0       0        60       60   1m00s");
  CHECK(lines[2] == "held-back            40       0      0       0        40        -  paused");
  CHECK(lines[3].ends_with("     60   1m00s"));  // the total's ETA is of the rows that move
  paused.by_state = {{"pending", 3}};
  CHECK(render_table({paused}, {}).back().ends_with("-"));
  CHECK(render_table({tenant("zero-rate", 0, 5, 0, 0, 0)}, {})[1].ends_with("       -"));
}

TEST_CASE("progress: redraw erases the table, writes the log lines above it, draws it again", "[progress]") {
  CHECK(redraw(0, {}, {"a", "b"}) == "a\nb\n");
  CHECK(redraw(2, {"level=info event=x"}, {"a", "b"}) == "\r\x1b[2A\x1b[Jlevel=info event=x\na\nb\n");
  CHECK(redraw(3, {}, {}) == "\r\x1b[3A\x1b[J");
}

TEST_CASE("progress: the run's tally moves rows between states from a baseline", "[progress]") {
  RowTally tally;
  tally.set_baseline("acme", {{"pending", 3}, {"retrying", 1}, {"in_sync", 2}});
  tally.moved("acme", "pending", "in_sync");
  tally.moved("acme", "retrying", "failed");
  tally.moved("acme", "pending", "retrying");
  tally.moved("acme", "in_sync", "in_sync");  // a resync of a row in sync
  CHECK(tally.counts("acme") == RowTally::Counts{{"pending", 1}, {"retrying", 1}, {"in_sync", 3}, {"failed", 1}});
  // The baseline saw the tenant paused; the daemon knows its rows as pending.
  tally.set_baseline("bravo", {{"paused", 2}});
  tally.moved("bravo", "pending", "in_sync");
  CHECK(tally.counts("bravo") == RowTally::Counts{{"paused", 1}, {"in_sync", 1}});
  // A row written after the baseline: desired grows by one.
  tally.moved("bravo", "pending", "invalid");
  tally.moved("bravo", "pending", "in_sync");
  CHECK(tally.counts("bravo") == RowTally::Counts{{"paused", 0}, {"in_sync", 2}, {"invalid", 1}});
  tally.moved("new", "pending", "in_sync");
  CHECK(tally.counts("new") == RowTally::Counts{{"in_sync", 1}});
  CHECK(tally.counts("unknown").empty());
}
