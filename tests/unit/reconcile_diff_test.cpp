// The "should this row be sent" diff, table-driven.
#include <catch2/catch.hpp>

#include "core/reconcile/diff.h"

using namespace callbackd::reconcile;

namespace {
RecordedState applied(std::string url, std::optional<bool> sw, std::int64_t revision) {
  RecordedState r;
  r.state = RowState::in_sync;
  r.revision = revision;
  r.applied_notify_url = std::move(url);
  r.applied_switch = sw;
  r.applied_revision = revision;
  return r;
}
RecordedState with_state(RecordedState r, RowState state, std::int64_t revision) {
  r.state = state;
  r.revision = revision;
  return r;
}
RecordedState never_applied(RowState state, std::int64_t revision) {
  RecordedState r;
  r.state = state;
  r.revision = revision;
  return r;
}
const std::string kA = "https://a.example.com/notify";
const std::string kB = "https://b.example.com/notify";
}  // namespace

TEST_CASE("should_send: never applied, values differ, touched after apply, parked", "[diff]") {
  struct Row {
    const char* name;
    DesiredCallback desired;
    std::optional<RecordedState> recorded;
    bool send;
    std::optional<SendReason> reason;
    std::optional<HoldReason> hold;
  };
  const std::vector<Row> table = {
      {"no state at all", {kA, true, 5}, std::nullopt, true, SendReason::never_applied, std::nullopt},
      {"retrying, never applied",
       {kA, true, 5},
       never_applied(RowState::retrying, 5),
       true,
       SendReason::never_applied,
       std::nullopt},
      {"in sync, same revision", {kA, true, 5}, applied(kA, true, 5), false, std::nullopt, HoldReason::in_sync},
      {"in sync, switch omitted both",
       {kA, std::nullopt, 5},
       applied(kA, std::nullopt, 5),
       false,
       std::nullopt,
       HoldReason::in_sync},
      {"url changed", {kB, true, 6}, applied(kA, true, 5), true, SendReason::values_differ, std::nullopt},
      {"switch changed", {kA, false, 6}, applied(kA, true, 5), true, SendReason::values_differ, std::nullopt},
      {"switch now omitted",
       {kA, std::nullopt, 6},
       applied(kA, true, 5),
       true,
       SendReason::values_differ,
       std::nullopt},
      {"touched, same values",
       {kA, true, 6},
       applied(kA, true, 5),
       true,
       SendReason::touched_after_apply,
       std::nullopt},
      // Values differ even though the revision did not move (state written by hand, a
      // restored backup): trust the values, send.
      {"values differ at same revision",
       {kB, true, 5},
       applied(kA, true, 5),
       true,
       SendReason::values_differ,
       std::nullopt},
      {"failed, same revision: parked",
       {kB, true, 6},
       with_state(applied(kA, true, 5), RowState::failed, 6),
       false,
       std::nullopt,
       HoldReason::failed_until_changed},
      {"failed, never applied: parked",
       {kB, true, 6},
       never_applied(RowState::failed, 6),
       false,
       std::nullopt,
       HoldReason::failed_until_changed},
      {"failed, then touched",
       {kB, true, 7},
       with_state(applied(kA, true, 5), RowState::failed, 6),
       true,
       SendReason::values_differ,
       std::nullopt},
      {"failed, then touched back to applied values",
       {kA, true, 7},
       with_state(applied(kA, true, 5), RowState::failed, 6),
       true,
       SendReason::touched_after_apply,
       std::nullopt},
      {"invalid, same revision: parked",
       {"not a url", true, 8},
       never_applied(RowState::invalid, 8),
       false,
       std::nullopt,
       HoldReason::invalid_until_changed},
      {"invalid, then fixed",
       {kA, true, 9},
       never_applied(RowState::invalid, 8),
       true,
       SendReason::never_applied,
       std::nullopt},
      {"retrying after an apply of an older revision",
       {kB, true, 6},
       with_state(applied(kA, true, 5), RowState::retrying, 6),
       true,
       SendReason::values_differ,
       std::nullopt},
  };
  for (const auto& row : table) {
    INFO(row.name);
    const auto verdict = should_send(row.desired, row.recorded);
    CHECK(verdict.send == row.send);
    CHECK(verdict.reason == row.reason);
    CHECK(verdict.hold == row.hold);
    CHECK(verdict.reason.has_value() == verdict.send);
    CHECK(verdict.hold.has_value() == !verdict.send);
  }
}

TEST_CASE("should_send never looks at clocks: a later revision always wins", "[diff]") {
  // Whatever WeChat Pay's update_time or PostgreSQL's updated_at said, the decision is the
  // same for the same revisions (the types do not even carry the timestamps).
  const DesiredCallback desired{kA, true, 1'000'001};
  CHECK(should_send(desired, applied(kA, true, 1'000'000)).send);
  CHECK_FALSE(should_send(desired, applied(kA, true, 1'000'001)).send);
}

TEST_CASE("reason names are stable", "[diff]") {
  CHECK(send_reason_name(SendReason::never_applied) == "never_applied");
  CHECK(send_reason_name(SendReason::values_differ) == "values_differ");
  CHECK(send_reason_name(SendReason::touched_after_apply) == "touched_after_apply");
  CHECK(hold_reason_name(HoldReason::in_sync) == "in_sync");
  CHECK(hold_reason_name(HoldReason::failed_until_changed) == "failed_until_changed");
  CHECK(hold_reason_name(HoldReason::invalid_until_changed) == "invalid_until_changed");
}
