// When the run loop claims a tenant's rows, and when it wakes up for them (claim_gate.h).
// Issue 13 item 3: with WeChat Pay held, a "first row due later" that had passed kept waking
// the loop at once, about 5,000 turns a second for as long as the hold lasted.
#include <catch2/catch.hpp>

#include "core/reconcile/claim_gate.h"
#include "reconcile_test_support.h"

using namespace callbackd::reconcile;
using namespace callbackd::reconcile::testing;

namespace {

const Instant now = kStart;

ClaimInputs open_tenant() {
  ClaimInputs in;
  in.batch = 33;
  return in;
}

ClaimInputs held(std::optional<Instant> probe_at, std::optional<Instant> next_due_at) {
  ClaimInputs in = open_tenant();
  in.endpoint_held = true;
  in.endpoint = probe_at ? EndpointPermission{false, false, probe_at} : EndpointPermission{false, false, std::nullopt};
  in.next_due_at = next_due_at;
  return in;
}

ClaimInputs paused(std::optional<Instant> probe_at, std::optional<Instant> next_due_at) {
  ClaimInputs in = open_tenant();
  in.paused_by_error = true;
  in.tenant = SendPermission{false, true, probe_at};
  in.next_due_at = next_due_at;
  return in;
}

}  // namespace

TEST_CASE("claim gate: how many rows, and when to wake up, per situation", "[claim_gate]") {
  struct Row {
    const char* situation;
    ClaimInputs in;
    int limit;
    std::optional<Instant> wake_at;
  };
  ClaimInputs stopping = open_tenant();
  stopping.stopping = true;
  ClaimInputs observe = open_tenant();
  observe.sends = false;
  observe.next_due_at = now - 5s;  // a lease lost after a claim: only the heartbeat brings it back
  ClaimInputs pending = open_tenant();
  pending.claim_pending = true;
  ClaimInputs full = open_tenant();
  full.buffered = 20;
  ClaimInputs half = open_tenant();
  half.buffered = 16;
  ClaimInputs drained_later = open_tenant();
  drained_later.drained = true;
  drained_later.next_due_at = now + 3s;
  ClaimInputs drained_due = drained_later;
  drained_due.next_due_at = now - 1ms;
  ClaimInputs drained_buffered = drained_later;
  drained_buffered.buffered = 2;
  ClaimInputs drained_nothing = open_tenant();
  drained_nothing.drained = true;
  ClaimInputs probe_time = held(std::nullopt, now - 2s);
  probe_time.endpoint = EndpointPermission{true, true, std::nullopt};
  ClaimInputs probe_buffered = probe_time;
  probe_buffered.buffered = 1;
  ClaimInputs tenant_probe = paused(std::nullopt, now - 2s);
  tenant_probe.tenant = SendPermission{true, true, std::nullopt};

  const std::vector<Row> rows{
      {"open, buffer empty", open_tenant(), 33, std::nullopt},
      {"stopping", stopping, 0, std::nullopt},
      {"not sending here, a due time that passed", observe, 0, std::nullopt},
      {"a claim already out", pending, 0, std::nullopt},
      {"buffer above half a batch", full, 0, std::nullopt},
      {"buffer at half a batch", half, 33, std::nullopt},
      {"drained, next row due later", drained_later, 0, now + 3s},
      {"drained, the row due later has fallen due", drained_due, 33, std::nullopt},
      {"drained with rows buffered", drained_buffered, 0, std::nullopt},
      {"drained, nothing due later", drained_nothing, 0, std::nullopt},
      // The hot loop of issue 13: the rows released by the hold are due (next_due_at passed),
      // but nothing may be claimed before the probe. Wake for the probe, not for them.
      {"held, due time passed, probe later", held(now + 4s, now - 2s), 0, now + 4s},
      {"held, due time now, probe later", held(now + 4s, now), 0, now + 4s},
      {"held, due time ahead of the probe", held(now + 4s, now + 1s), 0, now + 4s},
      {"held, due time passed, probe in flight", held(std::nullopt, now - 2s), 0, std::nullopt},
      {"held, probe may go: one row", probe_time, 1, std::nullopt},
      {"held, probe may go, its row claimed", probe_buffered, 0, std::nullopt},
      {"paused, due time passed, probe later", paused(now + 10s, now - 2s), 0, now + 10s},
      {"paused, due time passed, probe out", paused(std::nullopt, now - 2s), 0, std::nullopt},
      {"paused, probe may go: one row", tenant_probe, 1, std::nullopt},
  };
  for (const auto& row : rows) {
    INFO(row.situation);
    const ClaimDecision d = decide_claim(row.in, now);
    CHECK(d.limit == row.limit);
    CHECK(d.wake_at == row.wake_at);
    // Whatever the inputs: a claim, or a wake-up strictly ahead, or none.
    if (d.wake_at) CHECK(*d.wake_at > now);
    if (d.limit > 0) CHECK_FALSE(d.wake_at);
  }
}
