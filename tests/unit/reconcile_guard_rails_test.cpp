// Guard rails for mass changes (issue 18): the verdict with a tenant's allowed hosts, what
// counts against the change budget, and the one-line summary of held changes.
#include <catch2/catch.hpp>

#include "core/reconcile/held_changes.h"
#include "core/reconcile/work_verdict.h"

using namespace callbackd;
using namespace callbackd::reconcile;

namespace {

DesiredCallback desired_row(std::string url, std::int64_t revision) {
  return DesiredCallback{std::move(url), true, revision};
}

RecordedState applied(std::string url, std::int64_t revision) {
  RecordedState s;
  s.state = RowState::in_sync;
  s.revision = revision;
  s.applied_notify_url = std::move(url);
  s.applied_switch = true;
  s.applied_revision = revision;
  return s;
}

WorkVerdict judge(const DesiredCallback& d, const std::optional<RecordedState>& r,
                  const std::optional<desired::AllowedHosts>& allowed, bool resync = false) {
  return judge_work_item("1900000109", d.notify_url, d, r, allowed, resync);
}

}  // namespace

TEST_CASE("judge_work_item: a host outside the tenant's list is invalid and never sent", "[guard_rails]") {
  const auto allowed = desired::parse_allowed_hosts({"hooks.example.com"});
  const auto elsewhere = desired_row("https://hooks.example.com@evil.com/cb", 5);
  // Validation refuses user information first; a plain foreign host is the list's to refuse.
  CHECK(judge(elsewhere, std::nullopt, allowed).invalid->code == "INVALID_DESIRED_ROW");
  const auto foreign = desired_row("https://evil.example/cb", 5);
  const auto v = judge(foreign, std::nullopt, allowed);
  REQUIRE(v.action == WorkAction::mark_invalid);
  CHECK(v.invalid->code == "NOTIFY_HOST_NOT_ALLOWED");
  CHECK(v.invalid->message.find("\"evil.example\"") != std::string::npos);
  CHECK(v.invalid->message.find("{hooks.example.com}") != std::string::npos);
  // Not even a resync sends it, and an in-sync row whose host is no longer allowed turns invalid.
  CHECK(judge(foreign, applied("https://evil.example/cb", 5), allowed, true).action == WorkAction::mark_invalid);
  // NULL: any host.
  CHECK(judge(foreign, std::nullopt, std::nullopt).action == WorkAction::send);
  CHECK(judge(desired_row("https://HOOKS.example.com./cb", 5), std::nullopt, allowed).action == WorkAction::send);
}

TEST_CASE("judge_work_item: a row parked invalid is judged again when the list changes", "[guard_rails]") {
  const auto narrow = desired::parse_allowed_hosts({"hooks.example.com"});
  const auto wide = desired::parse_allowed_hosts({"hooks.example.com", "*.example.net"});
  const auto row = desired_row("https://b.example.net/cb", 7);
  const auto refused = judge(row, std::nullopt, narrow);
  REQUIRE(refused.invalid);

  RecordedState parked = applied("https://hooks.example.com/cb", 3);
  parked.state = RowState::invalid;
  parked.revision = 7;
  parked.last_error_message = refused.invalid->message;

  // The same reason again: stays parked without a new audit row.
  const auto same = judge(row, parked, narrow);
  CHECK(same.action == WorkAction::drop);
  CHECK(same.reason_name() == "invalid_until_changed");
  // Another list, still refused: recorded again, so that the message names the list in force.
  const auto other = judge(row, parked, desired::parse_allowed_hosts({"hooks.example.org"}));
  CHECK(other.action == WorkAction::mark_invalid);
  // Allowed now: sent, and it changes what WeChat Pay holds.
  const auto now = judge(row, parked, wide);
  CHECK(now.action == WorkAction::send);
  CHECK(now.reason_name() == "now_allowed");
  CHECK(changes_applied_values(now, row, parked));
  // A row invalid for its own value stays parked whatever the list says.
  const auto bad = desired_row("http://b.example.net/cb", 7);
  RecordedState bad_parked = parked;
  bad_parked.last_error_message = judge(bad, std::nullopt, std::nullopt).invalid->message;
  CHECK(judge(bad, bad_parked, wide).action == WorkAction::drop);
}

TEST_CASE("changes_applied_values: only a send that changes the applied values counts against the budget",
          "[guard_rails]") {
  const auto moved = desired_row("https://b.example/cb", 9);
  const auto was_a = applied("https://a.example/cb", 4);
  CHECK(changes_applied_values(judge(moved, was_a, std::nullopt), moved, was_a));
  // The switch alone is a change too.
  auto switched = desired_row("https://a.example/cb", 9);
  switched.push_switch = false;
  CHECK(changes_applied_values(judge(switched, was_a, std::nullopt), switched, was_a));
  // A first apply, a touch (same values, newer revision), a resync and an undo are not.
  CHECK_FALSE(changes_applied_values(judge(moved, std::nullopt, std::nullopt), moved, std::nullopt));
  const auto touched = desired_row("https://a.example/cb", 9);
  const auto touch = judge(touched, was_a, std::nullopt);
  REQUIRE(touch.action == WorkAction::send);
  CHECK_FALSE(changes_applied_values(touch, touched, was_a));
  const auto same = desired_row("https://a.example/cb", 4);
  const auto resync = judge(same, was_a, std::nullopt, true);
  REQUIRE(resync.resync);
  CHECK_FALSE(changes_applied_values(resync, same, was_a));
  // Nothing sent, nothing counted.
  const auto refused = judge(moved, was_a, desired::parse_allowed_hosts({"a.example"}));
  CHECK_FALSE(changes_applied_values(refused, moved, was_a));
}

TEST_CASE("held_hosts_summary: before and after by host, most rows first", "[guard_rails]") {
  CHECK(with_thousands(0) == "0");
  CHECK(with_thousands(999) == "999");
  CHECK(with_thousands(1200) == "1,200");
  CHECK(with_thousands(1234567) == "1,234,567");

  CHECK(held_hosts_summary({{"https://hooks.a.example/cb", "https://hooks.b.example/cb", 1200}}) ==
        "hooks.a.example (1,200) \u2192 hooks.b.example (1,200)");
  // Rows with different paths on one host are one host; case and trailing dots too.
  CHECK(held_hosts_summary({{"https://hooks.a.example/1", "https://HOOKS.b.example./1", 700},
                            {"https://hooks.a.example/2", "https://hooks.b.example/2", 500},
                            {"https://old.example/3", "https://hooks.b.example/3", 900},
                            {std::nullopt, "https://hooks.c.example/4", 1}}) ==
        "hooks.a.example (1,200), old.example (900), (nothing applied) (1) \u2192 hooks.b.example (2,100), "
        "hooks.c.example (1)");
  CHECK(held_hosts_summary({{"https://a.example/", "https://z.example/", 4},
                            {"https://b.example/", "https://z.example/", 3},
                            {"https://c.example/", "https://z.example/", 2},
                            {"https://d.example/", std::nullopt, 1}},
                           2) == "a.example (4), b.example (3), 2 more (3) \u2192 z.example (9), (no host) (1)");
  CHECK(held_hosts_summary({}).empty());
}
