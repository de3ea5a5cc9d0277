// The progress table on a terminal (issue 20): `run --exit-when-idle` under a pseudo-terminal
// (util-linux `script`) draws a per-tenant table whose remaining count goes down, log lines
// scroll above it without tearing it, and the final table stays with the batch's summary line;
// without a terminal (or with --progress=never) the output has no control characters;
// `status --watch` under a pseudo-terminal shows the counts that SQL shows.
#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "e2e/e2e_support.h"

using namespace e2e;
using callbackd::test::Finished;

namespace {

std::string shell_quoted(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// `command` on a pseudo-terminal of 80x24 (script -q: no banner; -e: its exit status), with
// `env` (NAME=value) set for it. The output is what the terminal received.
Finished run_on_terminal(const std::vector<std::string>& command, const std::string& env,
                         std::chrono::seconds limit = std::chrono::seconds{90}) {
  std::string line = "stty cols 80 rows 24; exec env " + env;
  for (const auto& arg : command) line += " " + shell_quoted(arg);
  return callbackd::test::run_process_for({"/usr/bin/script", "-q", "-e", "-c", line, "/dev/null"}, limit);
}

// The terminal's text as lines: the redraws' cursor movements removed (each redraw starts
// where a line starts), "\r\n" as "\n".
std::vector<std::string> terminal_lines(const std::string& raw) {
  const std::string text = std::regex_replace(raw, std::regex("\r?\x1b\\[[0-9]+A\x1b\\[J|\r"), "");
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool has_control_characters(const std::string& output) {
  for (unsigned char c : output)
    if ((c < 0x20 && c != '\n') || c == 0x7f) return true;
  return false;
}

// A table line: label, desired, in sync, failed, invalid, remaining, rate/min, ETA.
const std::regex kRow(R"(^(\S+(?: more)?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)$)");

struct Row {
  long long desired, in_sync, failed, invalid, remaining;
  std::string rate, eta;
};

std::optional<Row> parse_row(const std::string& line, const std::string& label) {
  std::smatch m;
  if (!std::regex_match(line, m, kRow) || m[1] != label) return std::nullopt;
  return Row{std::stoll(m[2]), std::stoll(m[3]), std::stoll(m[4]), std::stoll(m[5]), std::stoll(m[6]), m[7], m[8]};
}

// Every frame's line for `label`, in the order drawn.
std::vector<Row> rows_of(const std::vector<std::string>& lines, const std::string& label) {
  std::vector<Row> rows;
  for (const auto& line : lines)
    if (auto row = parse_row(line, label)) rows.push_back(*row);
  return rows;
}

const std::string kFaults = "  sub_merchants:\n    \"" + sub_merchant(1, 7) + "\": {kind: error, code: PARAM_ERROR}\n";

// Two tenants, 48 and 24 rows at 480 a minute (6 s and 3 s), one row refused by WeChat Pay
// and one invalid: a run long enough for several refreshes, with something in every column.
void add_batch(Environment& env) {
  TenantSpec acme("acme", "1900000001");
  acme.rate_per_minute = 480;
  TenantSpec bravo("bravo", "1900000002");
  bravo.rate_per_minute = 480;
  env.add_tenant(acme);
  env.add_tenant(bravo);
  env.add_rows("acme", 1, 48);
  env.add_rows("bravo", 2, 24);
  env.exec("INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES ('" +
           sub_merchant(2, 99) + "', 'bravo', 'http://plain.example.com/notify', true)");
}

const std::string kSummary =
    "callbackd: idle with work left: 1 row failed (acme: 1 PARAM_ERROR), 1 row invalid (bravo: 1 "
    "INVALID_DESIRED_ROW)";

}  // namespace

TEST_CASE("progress: run --exit-when-idle on a terminal draws the table to the end", "[e2e][progress]") {
  Environment env;
  add_batch(env);
  env.start_sandbox("", kFaults);
  auto command = env.daemon_command();
  command.push_back("--exit-when-idle");
  const Finished run = run_on_terminal(command, "TERM=xterm NO_COLOR=1");
  INFO(output_tail(run.output));
  CHECK(run.exit_status == 2);
  // NO_COLOR: cursor movements only, no colour.
  CHECK_FALSE(std::regex_search(run.output, std::regex("\x1b\\[[0-9;]*m")));
  CHECK(contains(run.output, "\x1b[J"));

  const auto lines = terminal_lines(run.output);
  // Every line is whole: a log line, a title, a header, a table row or the summary (a log
  // line written while the table was up did not tear it).
  for (const auto& line : lines) {
    CAPTURE(line);
    CHECK((line.starts_with("ts=") || line.starts_with("callbackd run: ") ||
           line.starts_with("tenant          desired") || std::regex_match(line, kRow) || line == kSummary));
  }
  // The total's remaining count goes down, refresh after refresh, to the two rows left.
  const auto totals = rows_of(lines, "total");
  REQUIRE(totals.size() >= 3);
  CHECK(totals.front().remaining == 73);  // 48 + 24 + the invalid row
  CHECK(totals.front().desired == 73);
  std::set<long long> seen;
  for (std::size_t i = 1; i < totals.size(); ++i) CHECK(totals[i].remaining <= totals[i - 1].remaining);
  for (const auto& t : totals) seen.insert(t.remaining);
  CHECK(seen.size() >= 3);  // seen moving, not only at the start and the end
  // While acme sent, its ETA was its remaining rows at its pacer's rate (480 a minute: 8 a
  // second), rounded up to whole seconds.
  int timed = 0;
  for (const auto& row : rows_of(lines, "acme")) {
    if (row.rate != "480" || row.remaining == 0) continue;
    ++timed;
    CHECK(row.eta == std::to_string((row.remaining + 7) / 8) + "s");
  }
  CHECK(timed >= 2);

  // The last frame stays, with the summary line right below it.
  REQUIRE(lines.size() >= 5);
  const auto summary = std::find(lines.begin(), lines.end(), kSummary);
  REQUIRE(summary != lines.end());
  REQUIRE(summary - lines.begin() >= 4);
  const auto last_total = parse_row(*(summary - 1), "total");
  REQUIRE(last_total);
  CHECK(last_total->desired == 73);
  CHECK(last_total->in_sync == 71);
  CHECK(last_total->failed == 1);
  CHECK(last_total->invalid == 1);
  CHECK(last_total->remaining == 0);
  CHECK(last_total->eta == "done");
  const auto last_acme = parse_row(*(summary - 3), "acme");
  const auto last_bravo = parse_row(*(summary - 2), "bravo");
  REQUIRE(last_acme);
  REQUIRE(last_bravo);
  CHECK(last_acme->in_sync == env.count("SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'acme' AND "
                                        "state = 'in_sync'"));
  CHECK(last_acme->failed == 1);
  CHECK(last_bravo->desired == 25);
  CHECK(last_bravo->invalid == 1);
}

TEST_CASE("progress: without a terminal, or with --progress=never, no control characters", "[e2e][progress]") {
  Environment env;
  add_batch(env);
  env.start_sandbox("", kFaults);
  const Finished piped = env.run_until_idle();
  INFO(output_tail(piped.output));
  CHECK(piped.exit_status == 2);
  CHECK(contains(piped.output, kSummary));
  CHECK_FALSE(has_control_characters(piped.output));
  CHECK_FALSE(contains(piped.output, "rate/min"));

  // A terminal, but the table turned off: the log lines alone (the terminal's "\r\n" aside).
  env.exec("DELETE FROM callbackd.desired_callbacks");
  env.add_rows("acme", 3, 5);
  auto command = env.daemon_command();
  command.push_back("--exit-when-idle");
  command.push_back("--progress=never");
  const Finished never = run_on_terminal(command, "TERM=xterm");
  INFO(output_tail(never.output));
  CHECK(never.exit_status == 0);
  CHECK_FALSE(has_control_characters(std::regex_replace(never.output, std::regex("\r\n"), "\n")));
  CHECK_FALSE(contains(never.output, "rate/min"));
}

TEST_CASE("progress: status --watch on a terminal shows the counts SQL shows", "[e2e][progress]") {
  Environment env;
  add_batch(env);
  env.start_sandbox("", kFaults);
  REQUIRE(env.run_until_idle().exit_status == 2);
  // Rows nobody sends: remaining, and for a tenant nothing was sent for in the last minute
  // "idle" rather than an ETA (no daemon runs).
  env.add_rows("bravo", 4, 6);
  env.add_tenant(TenantSpec("charlie", "1900000003"));
  env.add_rows("charlie", 5, 4);

  const std::string config = env.write_daemon_config();
  const Finished watch = run_on_terminal({"timeout", "--preserve-status", "-s", "INT", "3", CALLBACKD_BINARY,
                                          "--config", config, "status", "--watch", "--interval", "500ms"},
                                         "TERM=xterm-256color");
  INFO(output_tail(watch.output));
  CHECK(watch.exit_status == 0);                                    // SIGINT ends the watch normally
  CHECK(std::regex_search(watch.output, std::regex("\x1b\\[1m")));  // a colour terminal, NO_COLOR unset
  const std::string plain = std::regex_replace(watch.output, std::regex("\x1b\\[[0-9;]*m"), "");
  const auto lines = terminal_lines(plain);
  CHECK(rows_of(lines, "total").size() >= 3);  // refreshed every 500 ms for 3 s

  for (const std::string tenant : {"acme", "bravo", "charlie"}) {
    const auto rows = rows_of(lines, tenant);
    REQUIRE(!rows.empty());
    const Row& last = rows.back();
    const std::string where = "FROM callbackd.sync_status WHERE tenant_id = '" + tenant + "'";
    CAPTURE(tenant);
    CHECK(last.desired == env.count("SELECT count(*) " + where));
    CHECK(last.in_sync == env.count("SELECT count(*) " + where + " AND state = 'in_sync'"));
    CHECK(last.failed == env.count("SELECT count(*) " + where + " AND state = 'failed'"));
    CHECK(last.invalid == env.count("SELECT count(*) " + where + " AND state = 'invalid'"));
    CHECK(last.remaining == env.count("SELECT count(*) " + where + " AND state IN ('pending', 'retrying')"));
  }
  CHECK(rows_of(lines, "charlie").back().eta == "idle");
  // Into a pipe: each refresh below the last, no control characters.
  const Finished piped =
      callbackd::test::run_process_for({"/usr/bin/timeout", "--preserve-status", "-s", "INT", "2", CALLBACKD_BINARY,
                                        "--config", config, "status", "--watch", "--interval=500ms"},
                                       std::chrono::seconds{30});
  CHECK(piped.exit_status == 0);
  CHECK_FALSE(has_control_characters(piped.output));
  CHECK(rows_of(terminal_lines(piped.output), "charlie").size() >= 2);
  // --interval belongs to --watch.
  CHECK(
      callbackd::test::run_process({CALLBACKD_BINARY, "--config", config, "status", "--interval", "2s"}).exit_status ==
      64);
  CHECK(rows_of(lines, "bravo").back().eta == "1s");  // sent for within the minute: 6 rows at 480/min
  CHECK(rows_of(lines, "acme").back().eta == "done");
}
