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

// The run loop stops looking at a tenant that rest_after_no_claim lets sleep (attention.h):
// it must be safe, i.e. nothing but the instant it names could make the gate claim.
TEST_CASE("claim gate: when the loop may stop looking at a tenant, and until when", "[claim_gate]") {
  struct Row {
    const char* situation;
    ClaimInputs in;
    bool in_flight;
    bool sleeps;
    std::optional<Instant> until;
  };
  ClaimInputs observe = open_tenant();
  observe.sends = false;
  ClaimInputs drained_later = open_tenant();
  drained_later.drained = true;
  drained_later.next_due_at = now + 3s;
  ClaimInputs drained_nothing = open_tenant();
  drained_nothing.drained = true;
  ClaimInputs drained_buffered = drained_later;
  drained_buffered.buffered = 1;
  ClaimInputs drained_pending = drained_later;
  drained_pending.claim_pending = true;
  ClaimInputs paused_due = paused(now + 10s, now - 2s);
  paused_due.drained = true;
  ClaimInputs paused_later = paused(now + 10s, now + 30s);
  paused_later.drained = true;
  ClaimInputs held_drained = held(now + 4s, std::nullopt);
  held_drained.drained = true;

  const std::vector<Row> rows{
      {"open, not drained: it claims when its buffer runs low", open_tenant(), false, false, std::nullopt},
      {"not sending here: until an event", observe, false, true, std::nullopt},
      {"not sending here, requests still in flight", observe, true, false, std::nullopt},
      {"drained, next row due later: until then", drained_later, false, true, now + 3s},
      {"drained, nothing due later: until an event", drained_nothing, false, true, std::nullopt},
      {"drained, rows buffered", drained_buffered, false, false, std::nullopt},
      {"drained, a claim out", drained_pending, false, false, std::nullopt},
      {"drained, requests in flight", drained_later, true, false, std::nullopt},
      // A row fell due while the tenant's probe is not yet allowed: it is claimed at the probe.
      {"drained and paused, a row has fallen due", paused_due, false, false, std::nullopt},
      {"drained and paused, the next row due after the probe", paused_later, false, true, now + 30s},
      {"drained, WeChat Pay held", held_drained, false, true, std::nullopt},
  };
  for (const auto& row : rows) {
    INFO(row.situation);
    const ClaimRest r = rest_after_no_claim(row.in, row.in_flight, now);
    CHECK(r.sleeps == row.sleeps);
    CHECK(r.until == row.until);
    if (!r.sleeps) continue;
    // Asleep, the tenant would claim nothing before `until` whatever the gates do meanwhile:
    // a hold or a pause that ends, a probe that may go.
    for (const bool endpoint_open : {false, true})
      for (const bool tenant_open : {false, true})
        for (const Duration later : {Duration{1ms}, Duration{2s}, Duration{9s}, Duration{29s}}) {
          ClaimInputs in = row.in;
          if (in.endpoint_held) in.endpoint = EndpointPermission{endpoint_open, endpoint_open, std::nullopt};
          if (in.paused_by_error) in.tenant = SendPermission{tenant_open, tenant_open, std::nullopt};
          const Instant t = now + later;
          if (r.until && t >= *r.until) continue;
          CHECK(decide_claim(in, t).limit == 0);
        }
  }
}
