// Which tenant may send next, and when to wake up: fair scheduling across tenants. Pure: `now`
// is a parameter; the caller (the daemon's run loop) does the I/O and the waiting. Nothing
// throws (beyond allocation); unknown tenant ids are ignored (a tenant deleted meanwhile).
//
// What it promises (docs/product.md: "Tenants proceed in parallel; one slow or broken tenant
// never delays another"):
//  - Each tenant is limited only by its own Pacer, TenantState (mode, error pause, in-flight
//    limit) and its count of due rows. A tenant with 100,000 due rows takes its own slots and
//    no one else's: a tenant with 10 sends them at its own full rate meanwhile.
//  - A tenant that cannot send (mode paused or observe, paused by error between probes,
//    in-flight saturated because its requests are slow, no due rows) consumes nothing: no
//    pacer slot, no global slot, and it is simply skipped.
//  - The global cap (reconciler.global_rate_per_second) is shared round-robin among the
//    tenants that are ready at the moment a global slot is free: with k ready tenants each
//    gets 1/k of it, whatever their backlogs.
//  - The egress cap per source address (egress.h) is shared the same way: a tenant otherwise
//    ready takes a slot on the next free lane; a 429 read as the address's limit lowers the
//    lane's cap and not the tenant's rate.
//  - While WeChat Pay cannot be reached (EndpointHold, endpoint_hold.h), nobody sends but
//    the one probe per backoff step, taken by the next ready tenant in round-robin order.
// Cost: next() looks only at the tenants that have due rows or a row due later (an index kept
// by set_due_rows and the dispatches), each at most once: O(those tenants + log(number of
// tenants)) per decision. Idle tenants, however many, cost nothing per decision.
//
// The run loop:
//   loop { d = next(now); if (d.dispatch) { claim one due row of d.dispatch->tenant_id and
//          send it; continue; } wait until d.wake_at (or forever), a completion, or a NOTIFY;
//          refresh due counts with set_due_rows; }
// and for every completed request: on_finished(...), then decide_after_attempt for the row.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/reconcile/egress.h"
#include "core/reconcile/endpoint_hold.h"
#include "core/reconcile/learned_rates.h"
#include "core/reconcile/pacer.h"
#include "core/reconcile/tenant_state.h"
#include "core/reconcile/time.h"
#include "core/wechatpay/outcome.h"

namespace callbackd::reconcile {

// The scheduling-relevant columns of callbackd.tenants.
struct TenantSettings {
  TenantMode mode = TenantMode::apply;
  int rate_per_minute = 1000;
  int max_in_flight = 4;
};

struct Dispatch {
  std::string tenant_id;
  bool probe = false;           // the paused tenant's probe: pass it back to on_finished
  bool endpoint_probe = false;  // the held endpoint's probe: pass it back to on_finished
  std::size_t source = 0;       // the egress lane (source address) to send from (egress.h)
};

struct SchedulerDecision {
  // A tenant that may send one request now (its pacer slot, its in-flight place and a global
  // slot are taken). Call next() again at once: more may be ready.
  std::optional<Dispatch> dispatch;
  // Without a dispatch: the earliest instant at which one might be possible by the passing of
  // time alone (nullopt: only a completion, a NOTIFY or a settings change can make progress).
  std::optional<Instant> wake_at;
};

// One completed request, as on_finished needs it.
struct FinishedAttempt {
  wechatpay::OutcomeKind outcome = wechatpay::OutcomeKind::transient;
  bool probe = false;                            // Dispatch::probe
  bool endpoint_probe = false;                   // Dispatch::endpoint_probe
  EndpointReach reach = EndpointReach::reached;  // whether WeChat Pay was reached
  double jitter01 = 0.5;                         // uniform in [0, 1]: the endpoint hold's and the tenant probe's jitter
  Instant sent_at{};                             // when its slot was taken
  std::optional<std::chrono::seconds> retry_after;  // Outcome::retry_after
  std::string error_code;                           // Outcome::error_code
  std::string error_message;                        // Outcome::error_message
  std::string row{};                                // the sub-merchant: the endpoint hold counts rows
  std::size_t source = 0;                           // Dispatch::source
};

// For metrics and `status`.
struct TenantSnapshot {
  std::string tenant_id;
  // The scheduler's mode; engine::Reconciler::snapshot() answers the tenant's configured mode
  // here and whether this instance sends for it in sends_here (the scheduler holds a tenant in
  // observe while another instance has its lease or its keys load: not a pause of the tenant).
  TenantMode mode = TenantMode::apply;
  double effective_rate_per_minute = 0;
  bool throttled = false;
  bool paused_by_error = false;
  int in_flight = 0;
  std::size_t due_rows = 0;
  bool sends_here = true;
};

class FairScheduler {
 public:
  // Uses reconciler.global_rate_per_second, max_in_flight_per_tenant, tenant_probe_interval.
  explicit FairScheduler(const ReconcilerConfig& config, PacerTuning tuning = {},
                         EndpointHoldTuning endpoint_tuning = {});

  // A config reload (SIGHUP): the new global cap, max_in_flight_per_tenant and
  // tenant_probe_interval apply from now on; pacers, pauses and in-flight counts are kept.
  void reconfigure(const ReconcilerConfig& config);

  // Adds a tenant or applies changed settings (the pacer keeps its history, the state its
  // pause and in-flight count).
  void upsert_tenant(const std::string& tenant_id, const TenantSettings& settings);
  // Forgets a tenant (deleted from callbackd.tenants). Its in-flight completions are ignored.
  void remove_tenant(const std::string& tenant_id);
  // The tenant's due rows (pending_work entries due at `now`, unclaimed). next_due_at: the
  // earliest entry due later, so that next() can say when to wake up and refresh.
  void set_due_rows(const std::string& tenant_id, std::size_t due_now, std::optional<Instant> next_due_at);
  // A pause read back from tenant_state at start-up, or cleared because the operator changed
  // the tenant.
  void restore_pause(const std::string& tenant_id, TenantPause pause);
  void resume(const std::string& tenant_id);
  // Requests another instance sent for this tenant before this one took it over (Pacer::assume_sent).
  void assume_sent(const std::string& tenant_id, std::vector<Instant> sends);

  // The egress lanes (wechatpay.source_addresses, egress_rate_per_minute); one uncapped lane
  // until set. Set at start-up, before the first next().
  void set_egress(EgressLanes egress) { egress_ = std::move(egress); }
  const EgressLanes& egress() const { return egress_; }
  // What `tenant_id` can send at now, a minute: its pacer's effective rate, or its fair share
  // of the egress caps and of the global cap when that is lower. The claim batch is sized by
  // it (claim_policy.h).
  double sending_rate_per_minute(const std::string& tenant_id, Instant now) const;

  // Rates learned before a restart (learned_rates.h), read back at `now`: each resumes at its
  // rate moved back towards the configured one by its age (restored_rate()); a tenant known
  // here at once, one not yet known when upsert_tenant() adds it (recovering from `now` as
  // well); a source address by its lane index.
  void restore_learned(const std::map<std::string, LearnedRate>& tenants,
                       const std::map<std::size_t, LearnedRate>& lanes, Instant now);
  // What is learned now: the tenants sending here below their rate_per_minute (by id); the
  // addresses' is egress().learned().
  std::map<std::string, double> learned_tenant_rates(Instant now) const;

  // At most one dispatch per call; see SchedulerDecision.
  SchedulerDecision next(Instant now);

  // A request handed out by next() at `slot` was written to its connection at `written_at`:
  // its tenant's pacer and its egress lane count it from then (Pacer::written), so that the
  // time it took to sign it, to wait for a pooled connection or to open one is not part of
  // the arrival jitter their margin covers.
  void written(const std::string& tenant_id, std::size_t source, Instant slot, Instant written_at);

  // A request handed out by next() came back. Feeds the tenant's state machine (pause,
  // resume, in-flight), its pacer (429) and the endpoint hold (attempt.reach; compare
  // endpoint().held() before and after for its transition). Returns the tenant's
  // transition, to persist.
  TenantTransition on_finished(const std::string& tenant_id, const FinishedAttempt& attempt, Instant now);

  // Whether WeChat Pay is held as unreachable, for logs, metrics and `status`.
  const EndpointHold& endpoint() const { return endpoint_; }

  const TenantState* tenant_state(const std::string& tenant_id) const;
  const Pacer* pacer(const std::string& tenant_id) const;
  std::vector<TenantSnapshot> snapshot(Instant now) const;

 private:
  struct Tenant {
    TenantState state;
    Pacer pacer;
    int tenant_max_in_flight;  // tenants.max_in_flight, to recompute the limit on reload
    std::size_t due_rows = 0;
    std::optional<Instant> next_due_at;
  };

  using Tenants = std::map<std::string, Tenant>;

  // Orders entries of tenants_ by tenant id, as tenants_ does, and finds them by id.
  struct ByTenantId {
    using is_transparent = void;
    bool operator()(Tenants::iterator a, Tenants::iterator b) const { return a->first < b->first; }
    bool operator()(Tenants::iterator a, const std::string& b) const { return a->first < b; }
    bool operator()(const std::string& a, Tenants::iterator b) const { return a < b->first; }
  };

  // When `tenant` could next send by the passing of time alone; nullopt when it needs an event.
  static std::optional<Instant> ready_at(const Tenant& tenant, Instant now);
  // Puts `it` in with_rows_ or takes it out, after its due rows changed.
  void index_rows(Tenants::iterator it);

  ReconcilerConfig config_;
  PacerTuning tuning_;
  GlobalCap global_;
  EgressLanes egress_;
  EndpointHold endpoint_;
  Tenants tenants_;
  // The tenants with due rows or a row due later: ready_at() is nullopt for all the others, so
  // next() walks only these, in the same id order as tenants_ (map iterators stay valid until
  // their tenant is removed, which takes it out of here first).
  std::set<Tenants::iterator, ByTenantId> with_rows_;
  std::string last_served_;  // round-robin cursor: the next search starts after it
  // restore_learned() for tenants not added yet: their row and the instant it was read.
  std::map<std::string, std::pair<LearnedRate, Instant>> restored_;
  // Resumes `pacer` at what `learned` says, read at `read_at`.
  static void resume(Pacer& pacer, const LearnedRate& learned, Instant read_at);
};

}  // namespace callbackd::reconcile
