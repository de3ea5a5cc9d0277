#include "engine/reconciler.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

#include "core/logging/event.h"
#include "core/reconcile/claim_gate.h"
#include "core/reconcile/claim_policy.h"
#include "core/reconcile/lease_timing.h"
#include "core/reconcile/ownership_policy.h"
#include "core/reconcile/pause_merge.h"
#include "core/reconcile/work_verdict.h"
#include "engine/attempt.h"

namespace callbackd::engine {

namespace asio = boost::asio;
using reconcile::Instant;
using std::chrono::milliseconds;
// Ids from SQL in log lines: one bare token each (a hostile id cannot forge a field).
using logging::log_id;

namespace {

// Records are written in batches: one round trip per batch keeps the database far from being
// the bottleneck at thousands of requests a second, and the short age bound keeps sync_status
// within a few tens of milliseconds of the truth.
constexpr std::size_t kMaxBatch = 200;
constexpr milliseconds kMaxBatchAge{25};
// Above this many unwritten records (the database is down or slow), stop sending: nothing
// is lost, and memory stays bounded.
constexpr std::size_t kMaxUnwrittenRecords = 20'000;
constexpr milliseconds kFlushRetry{1'000};
constexpr milliseconds kIdleCheckInterval{250};
// Tenant leases: renewed every heartbeat; an instance stops sending long enough before its
// lease could lapse that even its last request has reached WeChat Pay (or given up) before
// another instance may take over: reconcile::lease_timing, from every phase of a request.
constexpr milliseconds kHeartbeatInterval{2'000};


bool same_credentials(const TenantRow& a, const TenantRow& b) {
  auto keys = [](const TenantRow& r) {
    std::vector<std::pair<std::string, std::string>> k;
    for (const auto& e : r.extra_keys) k.emplace_back(e.key_id, e.key_path);
    return k;
  };
  return a.caller_mchid == b.caller_mchid && a.merchant_serial_no == b.merchant_serial_no && a.private_key_path == b.private_key_path &&
         a.wechatpay_key_id == b.wechatpay_key_id && a.wechatpay_key_path == b.wechatpay_key_path && keys(a) == keys(b);
}

std::string join_problems(const std::vector<Problem>& problems) {
  std::string s;
  for (const auto& p : problems) s += (s.empty() ? "" : "; ") + p.to_string();
  return s;
}


int to_ms(reconcile::Duration d) { return static_cast<int>(std::chrono::duration_cast<milliseconds>(d).count()); }

}  // namespace

struct Reconciler::TenantRuntime {
  TenantRow row;
  // Shared with the requests in flight, so that a re-key or a removed tenant never pulls the
  // keys from under a request that is being verified.
  std::shared_ptr<const TenantCredentials> credentials;
  std::deque<reconcile::WorkItem> buffer;  // claimed, validated, waiting for a slot
  std::set<std::string> in_flight;  // mchids being sent
  std::string credentials_problem;  // why the key files failed to load ("" when they loaded)
  bool claim_pending = false;
  bool drained = false;  // the last claim found fewer due rows than asked for
  // Tenant ownership (several instances share one database; migrations/0003): this instance
  // sends for the tenant only while it holds the lease AND its own clock says the last renewal
  // is recent enough that the lease cannot have lapsed (send_until), and not while handing it
  // over (releasing).
  bool owned = false;
  bool releasing = false;
  Instant send_until{};
  std::optional<TenantMode> scheduled_mode;  // what the scheduler was last told
  std::optional<Instant> next_due_at;
};

Reconciler::Reconciler(asio::io_context& io, Config config, Clock& clock, http::Sender& client, DbWorker& db,
                       ReconcilerOptions options)
    : io_(io),
      config_(std::move(config)),
      clock_(clock),
      client_(client),
      db_(db),
      options_(std::move(options)),
      policy_(reconcile::RowPolicy::from_config(config_.reconciler)),
      scheduler_(config_.reconciler),
      wake_(clock.make_timer(io)),
      random_(std::random_device{}()),
      alive_(std::make_shared<bool>(true)) {}

Reconciler::~Reconciler() { *alive_ = false; }

void Reconciler::kick() { wake_->wake(); }

void Reconciler::stop() {
  if (stopping_) return;
  stopping_ = true;
  std::size_t in_flight = 0;
  for (const auto& [id, t] : tenants_) in_flight += t->in_flight.size();
  logging::info("stopping", {{"in_flight", in_flight}, {"unwritten_records", pending_records_.size()}});
  kick();
}

void Reconciler::reload(Config config) {
  const Instant now = clock_.now();
  // Requests dispatched before the reload keep their old deadline (lease_timing_since_reload).
  timing_before_reload_ = lease_timing(now);
  reloaded_at_ = now;
  config_ = std::move(config);
  // The client's deadlines are the ones the send margin is derived from: they change together.
  for (const auto& key : client_.reconfigure(config_.wechatpay))
    logging::warn("reload_partial", {{"key", key}, {"note", "read at start only: restart callbackd to apply it"}});
  // Longer deadlines from now on: a request dispatched at the old send_until could outlive the
  // lease granted before the reload, so each tenant stops dispatching that much earlier.
  const reconcile::Duration longer_by =
      reconcile::send_until_shift_after_reload(*timing_before_reload_, lease_timing(now));
  if (longer_by > reconcile::Duration::zero())
    for (auto& [id, t] : tenants_) t->send_until -= longer_by;
  policy_ = reconcile::RowPolicy::from_config(config_.reconciler);
  scheduler_.reconfigure(config_.reconciler);
  // Credentials may have moved (credentials_dir) or been replaced in place: re-read every
  // tenant's keys.
  reload_keys_ = true;
  refresh_tenants();
  kick();
}

void Reconciler::on_notification(const std::string& channel, const std::string& tenant_id) {
  if (channel == "callbackd_tenants") {
    refresh_tenants();
  } else if (auto it = tenants_.find(tenant_id); it != tenants_.end()) {
    it->second->drained = false;
  }
  kick();
}

void Reconciler::on_notifications_missed() {
  refresh_tenants();
  for (auto& [id, t] : tenants_) t->drained = false;
  kick();
}

std::vector<reconcile::TenantSnapshot> Reconciler::snapshot() const { return scheduler_.snapshot(clock_.now()); }

// ---------------------------------------------------------------------------------------
// Tenants

void Reconciler::refresh_tenants() {
  if (tenants_refresh_pending_) return;
  tenants_refresh_pending_ = true;
  std::weak_ptr<bool> alive = alive_;
  db_.post([this, alive](Store& store) {
    std::vector<TenantRow> rows;
    std::map<std::string, reconcile::StoredTenantPause> pauses;
    bool ok = true;
    try {
      rows = store.tenants();
      pauses = store.tenant_pauses();
    } catch (const std::exception& e) {
      ok = false;
      logging::error("tenants_read_failed", {{"error", e.what()}});
    }
    asio::post(io_, [this, alive, ok, rows = std::move(rows), pauses = std::move(pauses)]() mutable {
      if (alive.expired() || !*alive.lock()) return;
      tenants_refresh_pending_ = false;
      if (ok) {
        apply_tenants(std::move(rows), std::move(pauses), reload_keys_);
        reload_keys_ = false;
      }
      kick();
    });
  });
}

void Reconciler::apply_tenants(std::vector<TenantRow> rows, std::map<std::string, reconcile::StoredTenantPause> pauses,
                               bool reload_keys) {
  const Instant now = clock_.now();
  std::set<std::string> seen;
  for (auto& row : rows) {
    seen.insert(row.tenant_id);
    auto [it, inserted] = tenants_.try_emplace(row.tenant_id, nullptr);
    const bool is_new = inserted;
    if (is_new) it->second = std::make_unique<TenantRuntime>();
    TenantRuntime& t = *it->second;
    const bool keys_changed = is_new || reload_keys || !same_credentials(t.row, row);
    const std::string id = row.tenant_id;
    t.row = std::move(row);
    t.scheduled_mode.reset();  // settings may have changed: sync_scheduler() tells the scheduler
    sync_scheduler(id, t, now);
    // The database's pause state wins for tenants we do not send for (their owner keeps it)
    // and at start-up (a restart must not hammer a tenant that was paused for bad credentials).
    // (reconcile::merge_stored_pause, pause_merge.h).
    const auto* state = scheduler_.tenant_state(id);
    const auto p = pauses.find(id);
    switch (reconcile::merge_stored_pause({p != pauses.end(), is_new, t.owned, state != nullptr,
                                           state && state->paused_by_error()})) {
      case reconcile::PauseMerge::restore:
        scheduler_.restore_pause(id, reconcile::TenantPause{p->second.error_code, p->second.reason, now,
                                                            now + p->second.probe_in});
        break;
      case reconcile::PauseMerge::resume:
        scheduler_.resume(id);
        break;
      case reconcile::PauseMerge::keep:
        break;
    }
    if (!keys_changed) continue;
    auto loaded = load_tenant_credentials(t.row, config_.credentials_dir);
    if (loaded) {
      t.credentials = std::make_shared<const TenantCredentials>(std::move(loaded).value());
      t.credentials_problem.clear();
      // Resume a tenant paused by the daemon when its keys changed or its key files load now
      // (reconcile::resume_when_keys_load, pause_merge.h).
      const auto stored = pauses.find(id);
      if (reconcile::resume_when_keys_load(is_new, stored != pauses.end() ? &stored->second.error_code : nullptr)) {
        if (const auto* now_state = scheduler_.tenant_state(id); now_state && now_state->paused_by_error()) {
          scheduler_.resume(id);
          db_.post([id](Store& store) {
            try {
              store.resume_tenant(id);
            } catch (const std::exception& e) {
              logging::error("tenant_resume_failed", {{"tenant", log_id(id)}, {"error", e.what()}});
            }
          });
          pending_events_.push_back({id, "tenant_resumed", "", "credentials changed"});
          logging::info("tenant_resumed", {{"tenant", log_id(id)}, {"reason", "credentials changed"}});
        }
      }
      logging::info("tenant_loaded", {{"tenant", log_id(id)}, {"mode", tenant_mode_name(t.row.mode)},
                                      {"rate_per_minute", t.row.rate_per_minute}});
    } else {
      t.credentials.reset();
      t.credentials_problem = join_problems(loaded.error());
      // Bad credentials pause the tenant, not the daemon: the others go on. The owner records
      // it (see on_heartbeat); every instance holds it back.
      if (t.owned) pause_tenant(id, "CREDENTIALS_INVALID", t.credentials_problem, true);
    }
  }
  for (auto it = tenants_.begin(); it != tenants_.end();) {
    if (seen.count(it->first)) {
      ++it;
      continue;
    }
    release_buffer(*it->second);
    scheduler_.remove_tenant(it->first);
    logging::info("tenant_removed", {{"tenant", log_id(it->first)}});
    it = tenants_.erase(it);
  }
  tenants_loaded_ = true;
  if (options_.on_tenants_loaded) options_.on_tenants_loaded();
}

reconcile::LeaseTiming Reconciler::lease_timing(Instant now) const {
  const auto timing = reconcile::lease_timing(config_.wechatpay);
  if (!timing_before_reload_) return timing;
  return reconcile::lease_timing_since_reload(*timing_before_reload_, reloaded_at_, timing, now);
}

TenantMode Reconciler::scheduled_mode(const TenantRuntime& t, Instant now) const {
  if (t.row.mode == TenantMode::paused) return TenantMode::paused;
  // Not ours (or not surely ours any more): plan, never send. The scheduler keeps the tenant,
  // so its pacer history survives a lapse and a regained lease.
  if (!t.owned || t.releasing || now >= t.send_until) return TenantMode::observe;
  return t.row.mode;
}

void Reconciler::sync_scheduler(const std::string& tenant_id, TenantRuntime& t, Instant now) {
  const TenantMode mode = scheduled_mode(t, now);
  if (t.scheduled_mode == mode) return;
  t.scheduled_mode = mode;
  scheduler_.upsert_tenant(tenant_id, reconcile::TenantSettings{mode, t.row.rate_per_minute, t.row.max_in_flight});
  if (mode != TenantMode::apply) release_buffer(t);
}

void Reconciler::pause_tenant(const std::string& tenant_id, const std::string& code, const std::string& reason,
                              bool restore_in_scheduler) {
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) return;
  const Instant now = clock_.now();
  if (restore_in_scheduler) {
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const auto wait = reconcile::first_probe_wait(config_.reconciler.tenant_probe_interval, uniform(random_));
    scheduler_.restore_pause(tenant_id, reconcile::TenantPause{code, reason, now, now + wait});
  }
  // The first probe's time as the scheduler set it (backing off from seconds, tenant_state.h),
  // so that a restart keeps it.
  milliseconds probe_in = config_.reconciler.tenant_probe_interval;
  if (const auto* state = scheduler_.tenant_state(tenant_id); state && state->pause())
    probe_in = std::max(milliseconds{0}, std::chrono::ceil<milliseconds>(state->pause()->next_probe_at - now));
  release_buffer(*it->second);
  pending_events_.push_back({tenant_id, "tenant_error", code, reason});
  db_.post([tenant_id, code, reason, probe_in](Store& store) {
    try {
      store.pause_tenant(tenant_id, code, reason, probe_in);
    } catch (const std::exception& e) {
      logging::error("tenant_pause_failed", {{"tenant", log_id(tenant_id)}, {"error", e.what()}});
    }
  });
  logging::warn("tenant_paused", {{"tenant", log_id(tenant_id)}, {"code", code}, {"reason", reason}});
}

void Reconciler::release_buffer(TenantRuntime& t) {
  if (t.buffer.empty()) return;
  std::vector<std::int64_t> tokens;
  for (const auto& item : t.buffer) tokens.push_back(item.claim_token);
  t.buffer.clear();
  update_due(t.row.tenant_id, t);
  db_.post([tokens](Store& store) {
    try {
      store.release(tokens);
    } catch (const std::exception& e) {
      // The leases lapse on their own; the rows are only delayed.
      logging::warn("release_failed", {{"claims", tokens.size()}, {"error", e.what()}});
    }
  });
}

void Reconciler::update_due(const std::string& tenant_id, TenantRuntime& t) {
  scheduler_.set_due_rows(tenant_id, t.buffer.size(), t.buffer.empty() ? t.next_due_at : std::nullopt);
}

// ---------------------------------------------------------------------------------------
// Tenant ownership

void Reconciler::heartbeat() {
  heartbeat_in_flight_ = true;
  std::vector<std::string> release;
  for (auto& [id, t] : tenants_)
    if (t->releasing && t->in_flight.empty()) release.push_back(id);
  const auto timing = lease_timing(clock_.now());
  const auto lease = std::chrono::ceil<milliseconds>(timing.lease);
  const auto margin = std::chrono::ceil<milliseconds>(timing.send_margin);
  const auto dead_owner_margin = std::chrono::ceil<milliseconds>(timing.dead_owner_margin);
  std::weak_ptr<bool> alive = alive_;
  db_.post([this, alive, release, lease, margin, dead_owner_margin](Store& store) {
    // Before the statement: the database's now() (the lease's start) is no earlier than this.
    const Instant started = clock_.now();
    std::optional<reconcile::Ownership> ownership;
    try {
      // A dead instance on this machine (migrations/0005) starts nothing more: only what it
      // had already written may still reach WeChat Pay (LeaseTiming::dead_owner_margin).
      ownership = store.heartbeat(lease, release, dead_owner_margin);
      for (const auto& d : ownership->dead_instances)
        logging::info("instance_dead", {{"instance", d.instance_id}, {"pid", d.pid}, {"tenants", d.tenants},
                                        {"takeover_in_ms", dead_owner_margin.count()}});
    } catch (const std::exception& e) {
      logging::error("heartbeat_failed", {{"error", e.what()}, {"note", "sending stops when the leases may lapse"}});
    }
    asio::post(io_, [this, alive, release, ownership = std::move(ownership), lease_until = started + lease,
                     margin]() mutable {
      if (alive.expired() || !*alive.lock()) return;
      heartbeat_in_flight_ = false;
      // A SIGHUP between the statement and now may have lengthened the client's deadlines:
      // the margin is the larger of the one the lease was asked with and today's.
      const auto margin_now = std::chrono::ceil<milliseconds>(lease_timing(clock_.now()).send_margin);
      if (ownership) on_heartbeat(*ownership, release, reconcile::send_until(lease_until, margin, margin_now));
      kick();
    });
  });
}

void Reconciler::on_heartbeat(const reconcile::Ownership& ownership, const std::vector<std::string>& released,
                              Instant send_until) {
  const Instant now = clock_.now();
  for (const auto& id : released)
    if (auto it = tenants_.find(id); it != tenants_.end()) {
      it->second->releasing = false;
      it->second->owned = false;
      logging::info("tenant_released", {{"tenant", log_id(id)}});
    }
  std::set<std::string> owned;
  bool unknown_tenant = false;
  std::vector<reconcile::HeldTenant> held;
  for (const auto& o : ownership.owned) {
    owned.insert(o.tenant_id);
    auto it = tenants_.find(o.tenant_id);
    if (it == tenants_.end()) {
      unknown_tenant = true;  // created after our last read of callbackd.tenants
      continue;
    }
    TenantRuntime& t = *it->second;
    t.send_until = send_until;
    if (o.acquired_now || !t.owned) {
      t.owned = true;
      t.releasing = false;
      t.drained = false;
      logging::info("tenant_acquired", {{"tenant", log_id(o.tenant_id)}, {"fencing_token", o.fencing_token},
                                        {"live_instances", ownership.live_instances}});
      // Another instance sent for this merchant within the last minute: count its requests
      // in our windows (ownership_policy.h).
      auto sends = reconcile::assumed_sends_after_takeover(o.recent_sends, t.row.max_in_flight, now);
      if (!sends.empty()) scheduler_.assume_sent(o.tenant_id, std::move(sends));
      // The pause state is the database's (another owner may have paused or resumed it).
      refresh_tenants();
      if (!t.credentials_problem.empty()) pause_tenant(o.tenant_id, "CREDENTIALS_INVALID", t.credentials_problem, true);
    }
    held.push_back({o.tenant_id, t.releasing});
  }
  // More than our share while others have room: hand these over once their requests in
  // flight are done (the next heartbeat deletes the lease).
  for (const auto& id : reconcile::tenants_to_hand_over(held, ownership.fair_share)) {
    tenants_.at(id)->releasing = true;
    logging::info("tenant_releasing", {{"tenant", log_id(id)}, {"fair_share", ownership.fair_share}});
  }
  for (auto& [id, t] : tenants_)
    if (t->owned && !owned.count(id)) {
      t->owned = false;
      t->releasing = false;
      logging::warn("tenant_lost", {{"tenant", log_id(id)}, {"note", "another instance holds it now"}});
    }
  if (unknown_tenant) refresh_tenants();
  for (auto& [id, t] : tenants_) sync_scheduler(id, *t, now);
}

// ---------------------------------------------------------------------------------------
// Claims

reconcile::ClaimInputs Reconciler::claim_inputs(const std::string& tenant_id, const TenantRuntime& t,
                                                Instant now) const {
  reconcile::ClaimInputs in;
  in.stopping = stopping_;
  in.sends = scheduled_mode(t, now) == TenantMode::apply;
  in.claim_pending = t.claim_pending;
  in.buffered = t.buffer.size();
  in.drained = t.drained;
  in.next_due_at = t.next_due_at;
  const auto* pacer = scheduler_.pacer(tenant_id);
  in.batch = reconcile::claim_batch(pacer ? pacer->effective_rate_per_minute(now) : t.row.rate_per_minute);
  in.endpoint_held = scheduler_.endpoint().held();
  in.endpoint = scheduler_.endpoint().permission(now);
  if (const auto* state = scheduler_.tenant_state(tenant_id)) {
    in.paused_by_error = state->paused_by_error();
    in.tenant = state->permission(now);
  }
  return in;
}

void Reconciler::maybe_claim(const std::string& tenant_id, TenantRuntime& t, Instant now) {
  // See claim_gate.h: while WeChat Pay is held or the tenant paused, one row for the probe
  // when it may go, none before.
  const int limit = reconcile::decide_claim(claim_inputs(tenant_id, t, now), now).limit;
  if (limit == 0) return;

  t.claim_pending = true;
  // The rows' lease (claim_policy.h): longer than the buffer and any request's deadline.
  const auto lease = reconcile::claim_lease(config_.wechatpay.request_timeout, lease_timing(now).lease);
  std::weak_ptr<bool> alive = alive_;
  db_.post([this, alive, tenant_id, limit, lease](Store& store) {
    reconcile::ClaimResult result;
    bool ok = true;
    try {
      result = std::move(store.claim_due({{tenant_id, limit}}, lease).at(0));
    } catch (const std::exception& e) {
      ok = false;
      logging::error("claim_failed", {{"tenant", log_id(tenant_id)}, {"error", e.what()}});
    }
    asio::post(io_, [this, alive, tenant_id, limit, ok, result = std::move(result)]() mutable {
      if (alive.expired() || !*alive.lock()) return;
      auto it = tenants_.find(tenant_id);
      if (it == tenants_.end()) return;
      it->second->claim_pending = false;
      if (ok) on_claimed(tenant_id, std::move(result), limit, clock_.now());
      else it->second->drained = true;  // the poll tries again
      kick();
    });
  });
}

void Reconciler::on_claimed(const std::string& tenant_id, reconcile::ClaimResult result, int asked, Instant now) {
  TenantRuntime& t = *tenants_.at(tenant_id);
  t.drained = static_cast<int>(result.items.size()) < asked;  // a full batch: claim again
  t.next_due_at = result.next_due_in ? std::optional<Instant>(now + *result.next_due_in) : std::nullopt;
  std::vector<std::int64_t> give_back;
  std::vector<reconcile::WorkItem> nothing_to_send;
  for (auto& item : result.items) {
    if (stopping_ || scheduled_mode(t, now) != TenantMode::apply ||
        (scheduler_.endpoint().held() && !t.buffer.empty())) {  // claimed just before the hold
      give_back.push_back(item.claim_token);
      continue;
    }
    // The same verdict `plan` shows: input is never trusted (an invalid row is recorded with
    // the reason and never sent, without taking a pacer slot), and an entry whose row needs
    // nothing is settled without an attempt.
    const auto verdict = reconcile::judge_work_item(item.sub_mchid, item.notify_url, item.desired, item.recorded,
                                                    item.resync);
    if (verdict.action == reconcile::WorkAction::drop) {
      logging::debug("row_dropped", {{"tenant", log_id(tenant_id)}, {"mchid", log_id(item.sub_mchid)},
                                     {"reason", verdict.reason_name()}});
      nothing_to_send.push_back(std::move(item));
      continue;
    }
    if (verdict.action == reconcile::WorkAction::mark_invalid) {
      reconcile::AttemptRecord rec = reconcile::attempt_record_for(item, wechatpay::outcome_name(wechatpay::OutcomeKind::invalid));
      rec.error_code = "INVALID_DESIRED_ROW";
      rec.error_message = verdict.invalid->message;
      rec.decision = reconcile::decide_after_attempt({wechatpay::OutcomeKind::invalid, std::nullopt, item.attempts},
                                                     policy_, now, 0.0);
      ++stats_.invalid;
      logging::warn("row_invalid", {{"tenant", log_id(tenant_id)}, {"mchid", log_id(item.sub_mchid)},
                                    {"error", verdict.invalid->message}});
      add_record(std::move(rec));
      continue;
    }
    if (t.in_flight.count(item.sub_mchid)) {
      // Our own earlier claim of this row is still in flight (its lease lapsed): the newer
      // claim fences the older attempt out, and the row is sent again with current values.
      logging::warn("reclaimed_in_flight", {{"tenant", log_id(tenant_id)}, {"mchid", log_id(item.sub_mchid)}});
    }
    t.buffer.push_back(std::move(item));
  }
  if (!nothing_to_send.empty())
    db_.post([items = std::move(nothing_to_send)](Store& store) {
      try {
        store.drop(items);
      } catch (const std::exception&) {
        // The leases lapse and the entries are judged again.
      }
    });
  if (!give_back.empty())
    db_.post([give_back](Store& store) {
      try {
        store.release(give_back);
      } catch (const std::exception&) {
        // The leases lapse on their own.
      }
    });
  update_due(tenant_id, t);
}

// ---------------------------------------------------------------------------------------
// Sending

void Reconciler::dispatch(const reconcile::Dispatch& d, Instant now) {
  TenantRuntime& t = *tenants_.at(d.tenant_id);
  CALLBACKD_ASSERT(!t.buffer.empty());  // the scheduler only dispatches tenants with due rows
  reconcile::WorkItem item = std::move(t.buffer.front());
  t.buffer.pop_front();
  update_due(d.tenant_id, t);
  t.in_flight.insert(item.sub_mchid);
  asio::co_spawn(io_, attempt(d.tenant_id, std::move(item), d, now), asio::detached);
}

asio::awaitable<void> Reconciler::attempt(std::string tenant_id, reconcile::WorkItem item, reconcile::Dispatch dispatch,
                                          Instant sent_at) {
  std::weak_ptr<bool> alive = alive_;
  TenantRuntime* t = tenants_.at(tenant_id).get();
  if (!t->credentials) {
    // A tenant whose key files failed to load is probed by loading them again, not by a request.
    auto loaded = load_tenant_credentials(t->row, config_.credentials_dir);
    if (loaded) t->credentials = std::make_shared<const TenantCredentials>(std::move(loaded).value());
  }
  wechatpay::Outcome outcome;
  std::optional<int> latency_ms;
  reconcile::EndpointReach reach = reconcile::EndpointReach::not_sent;
  if (!t->credentials) {
    outcome.kind = wechatpay::OutcomeKind::tenant_error;
    outcome.error_code = "CREDENTIALS_INVALID";
    outcome.error_message = "the tenant's key files still fail to load (see callbackd check-config)";
  } else {
    const auto unix_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.wall_now().time_since_epoch()).count();
    auto request = signed_favor_callbacks_request(*t->credentials, item.sub_mchid, item.desired.notify_url,
                                                  item.desired.push_switch, unix_seconds);
    if (!request) {
      outcome.kind = wechatpay::OutcomeKind::transient;
      outcome.error_code = "SIGNING_FAILED";
      outcome.error_message = request.error();
    } else {
      ++stats_.sent;
      const auto started = clock_.now();
      // `t` may be gone when the response arrives (tenant deleted); its keys are kept alive here.
      const std::shared_ptr<const TenantCredentials> credentials = t->credentials;
      auto response = co_await client_.send(std::move(request).value());
      if (alive.expired() || !*alive.lock()) co_return;
      latency_ms = to_ms(clock_.now() - started);
      outcome = classify_response(*credentials, response, clock_.wall_now(), item.desired.notify_url);
      reach = reach_of(response, outcome);
    }
  }
  if (alive.expired() || !*alive.lock()) co_return;
  finish(tenant_id, item, dispatch, sent_at, outcome, latency_ms, reach);
}

void Reconciler::finish(const std::string& tenant_id, const reconcile::WorkItem& item, const reconcile::Dispatch& dispatch,
                        Instant sent_at, const wechatpay::Outcome& outcome, std::optional<int> latency_ms,
                        reconcile::EndpointReach reach) {
  const Instant now = clock_.now();
  auto it = tenants_.find(tenant_id);
  if (it != tenants_.end()) it->second->in_flight.erase(item.sub_mchid);

  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  reconcile::FinishedAttempt finished{outcome.kind, dispatch.probe, dispatch.endpoint_probe, reach, uniform(random_),
                                      sent_at, outcome.retry_after, outcome.error_code, outcome.error_message,
                                      item.sub_mchid};
  const bool was_held = scheduler_.endpoint().held();
  const int failed_probes_before = scheduler_.endpoint().failed_probes();
  const auto transition = scheduler_.on_finished(tenant_id, finished, now);
  on_endpoint_change(was_held, failed_probes_before, outcome, now);
  const auto decision = reconcile::decide_after_attempt({outcome.kind, outcome.retry_after, item.attempts}, policy_,
                                                        now, uniform(random_));
  const std::string outcome_name(wechatpay::outcome_name(outcome.kind));
  ++stats_.outcomes[outcome_name];
  if (options_.on_attempt) options_.on_attempt({tenant_id, outcome_name, outcome.error_code, latency_ms});

  reconcile::AttemptRecord rec = reconcile::attempt_record_for(item, outcome_name);
  rec.http_status = outcome.http_status;
  rec.error_code = outcome.error_code;
  rec.error_message = outcome.error_message;
  rec.request_id = outcome.request_id;
  rec.latency_ms = latency_ms;
  if (outcome.applied && !outcome.applied->update_time_text.empty())
    rec.update_time = outcome.applied->update_time_text;
  rec.decision = decision;

  if (!outcome.warning.empty()) {
    // Applied (WeChat Pay signed its success), but the answer was not the documented one: the
    // audit row carries the warning, and the operator hears of it once per attempt.
    rec.error_message = outcome.warning;
    logging::warn("applied_with_warning",
                  {{"tenant", log_id(tenant_id)}, {"mchid", log_id(item.sub_mchid)},
                   {"request_id", outcome.request_id.value_or("")},
                   {"update_time", outcome.applied ? outcome.applied->update_time_text : std::string{}},
                   {"warning", outcome.warning}});
  } else if (outcome.kind == wechatpay::OutcomeKind::applied) {
    logging::debug("applied", {{"tenant", log_id(tenant_id)}, {"mchid", log_id(item.sub_mchid)},
                               {"request_id", outcome.request_id.value_or("")},
                               {"latency_ms", latency_ms.value_or(0)}});
  } else {
    logging::info("attempt_failed", {{"tenant", log_id(tenant_id)}, {"mchid", log_id(item.sub_mchid)},
                                     {"outcome", outcome_name}, {"http_status", outcome.http_status.value_or(0)},
                                     {"code", outcome.error_code}, {"request_id", outcome.request_id.value_or("")},
                                     {"error", outcome.error_message}});
  }
  add_record(std::move(rec));

  if (it != tenants_.end()) {
    if (transition == reconcile::TenantTransition::paused) {
      pause_tenant(tenant_id, outcome.error_code, outcome.error_message, false);
    } else if (transition == reconcile::TenantTransition::resumed) {
      pending_events_.push_back({tenant_id, "tenant_resumed", "", "probe applied"});
      db_.post([tenant_id](Store& store) {
        try {
          store.resume_tenant(tenant_id);
        } catch (const std::exception& e) {
          logging::error("tenant_resume_failed", {{"tenant", log_id(tenant_id)}, {"error", e.what()}});
        }
      });
      it->second->drained = false;
      logging::info("tenant_resumed", {{"tenant", log_id(tenant_id)}, {"reason", "probe applied"}});
    }
  }
  kick();
}

void Reconciler::on_endpoint_change(bool was_held, int failed_probes_before, const wechatpay::Outcome& outcome,
                                     Instant now) {
  const auto& hold = scheduler_.endpoint();
  if (!was_held && hold.held()) {
    ++stats_.endpoint_holds;
    const std::string_view reason = reconcile::endpoint_hold_reason_name(hold.reason());
    ++stats_.endpoint_holds_by_reason[std::string(reason)];
    // reason=not_wechatpay: something on the path (a proxy, a WAF) answers instead of WeChat Pay.
    logging::warn("wechatpay_unreachable", {{"reason", reason}, {"code", outcome.error_code},
                                            {"http_status", outcome.http_status.value_or(0)},
                                            {"error", outcome.error_message},
                                            {"next_probe_in_ms", to_ms(hold.next_probe_at() - now)},
                                            {"note", "sending is held; one probe request per backoff step until one "
                                                     "reaches WeChat Pay"}});
  } else if (was_held && !hold.held()) {
    logging::info("wechatpay_reachable", {{"reason", reconcile::endpoint_hold_reason_name(hold.reason())},
                                          {"held_ms", to_ms(now - hold.held_since())},
                                          {"failed_probes", hold.failed_probes()}});
  } else if (hold.held() && hold.failed_probes() > failed_probes_before) {
    ++stats_.endpoint_probes_failed;
    logging::debug("wechatpay_probe_failed", {{"reason", reconcile::endpoint_hold_reason_name(hold.reason())},
                                              {"failed_probes", hold.failed_probes()},
                                              {"next_probe_in_ms", to_ms(hold.next_probe_at() - now)}});
  } else {
    return;
  }
  if (hold.held()) hold_buffers();
}

void Reconciler::hold_buffers() {
  // Give every claimed, unsent row back: the wait until the next probe may be longer than a
  // claim's lease. The rows stay due; maybe_claim takes one again for the probe.
  for (auto& [id, t] : tenants_) {
    release_buffer(*t);
    t->drained = false;
  }
}

// ---------------------------------------------------------------------------------------
// Records

void Reconciler::add_record(reconcile::AttemptRecord record) {
  // One batch must not hold the same sub-merchant twice (its state row would be written twice
  // in one statement): write what is pending first.
  if (pending_record_sub_mchids_.count(record.sub_mchid)) maybe_flush(clock_.now(), true);
  if (pending_records_.empty()) first_pending_record_at_ = clock_.now();
  pending_record_sub_mchids_.insert(record.sub_mchid);
  pending_records_.push_back(std::move(record));
  ++stats_.recorded;
}

void Reconciler::maybe_flush(Instant now, bool force) {
  if (flush_in_flight_ || (pending_records_.empty() && pending_events_.empty())) return;
  if (flush_retry_at_ && *flush_retry_at_ > now) return;
  const bool old_enough = first_pending_record_at_ && now - *first_pending_record_at_ >= kMaxBatchAge;
  if (!force && !stopping_ && pending_records_.size() < kMaxBatch && !old_enough && pending_events_.empty()) return;

  const std::size_t n = std::min(pending_records_.size(), kMaxBatch * 5);
  auto batch = std::make_shared<std::vector<reconcile::AttemptRecord>>(std::make_move_iterator(pending_records_.begin()),
                                                                std::make_move_iterator(pending_records_.begin() + n));
  pending_records_.erase(pending_records_.begin(), pending_records_.begin() + n);
  pending_record_sub_mchids_.clear();
  for (const auto& r : pending_records_) pending_record_sub_mchids_.insert(r.sub_mchid);
  first_pending_record_at_ = pending_records_.empty() ? std::nullopt : std::optional<Instant>(now);
  auto events = std::make_shared<std::vector<reconcile::TenantEvent>>(std::move(pending_events_));
  pending_events_.clear();
  flush_in_flight_ = true;
  std::weak_ptr<bool> alive = alive_;
  db_.post([this, alive, batch, events](Store& store) {
    bool ok = true;
    try {
      store.record(*batch, *events);
    } catch (const std::exception& e) {
      ok = false;
      logging::error("record_failed", {{"records", batch->size()}, {"error", e.what()}, {"action", "retry"}});
    }
    asio::post(io_, [this, alive, batch, events, ok] {
      if (alive.expired() || !*alive.lock()) return;
      flush_in_flight_ = false;
      if (ok) {
        ++stats_.record_batches;
        flush_retry_at_.reset();
      } else {
        // Nothing is lost: the batch goes back in front, in order, and is retried.
        pending_records_.insert(pending_records_.begin(), std::make_move_iterator(batch->begin()),
                                std::make_move_iterator(batch->end()));
        pending_record_sub_mchids_.clear();
        for (const auto& r : pending_records_) pending_record_sub_mchids_.insert(r.sub_mchid);
        pending_events_.insert(pending_events_.begin(), events->begin(), events->end());
        first_pending_record_at_ = clock_.now();
        flush_retry_at_ = clock_.now() + kFlushRetry;
      }
      kick();
    });
  });
}

// ---------------------------------------------------------------------------------------
// The loop

bool Reconciler::locally_idle() const {
  if (flush_in_flight_ || !pending_records_.empty() || !pending_events_.empty() || tenants_refresh_pending_)
    return false;
  for (const auto& [id, t] : tenants_)
    if (t->claim_pending || !t->buffer.empty() || !t->in_flight.empty()) return false;
  return true;
}

std::optional<Instant> Reconciler::next_wake(Instant now, const reconcile::SchedulerDecision& d) const {
  std::optional<Instant> wake = d.wake_at;
  auto earliest = [&](std::optional<Instant> x) {
    if (x && (!wake || *x < *wake)) wake = x;
  };
  earliest(next_poll_);
  if (config_.reconciler.resync_interval.count() > 0) earliest(next_resync_);
  // Every instant here is ahead of `now`, or belongs to work in flight whose completion wakes
  // the loop: an instant that has passed would fire at once and spin the loop (issue 13).
  if (!flush_in_flight_) {  // (a retry keeps flush_retry_at_, now past, until it succeeds)
    if (flush_retry_at_) earliest(flush_retry_at_);
    else if (first_pending_record_at_) earliest(*first_pending_record_at_ + kMaxBatchAge);
  }
  if (!idle_check_in_flight_) earliest(next_idle_check_);
  if (!heartbeat_in_flight_ && tenants_loaded_) earliest(next_heartbeat_);
  for (const auto& [id, t] : tenants_)
    if (t->owned && t->send_until > now) earliest(t->send_until);
  // Due rows, the endpoint's next probe, a paused tenant's next probe: claim_gate.h.
  for (const auto& [id, t] : tenants_) earliest(reconcile::decide_claim(claim_inputs(id, *t, now), now).wake_at);
  return wake;
}

asio::awaitable<void> Reconciler::run() {
  const Instant start = clock_.now();
  next_poll_ = start;
  next_resync_ = start + config_.reconciler.resync_interval;
  refresh_tenants();
  while (true) {
    const Instant now = clock_.now();
    if (stopping_) break;
    ++stats_.loop_turns;

    if (now >= next_poll_) {
      // The safety net behind LISTEN/NOTIFY: every tenant looks for due rows again.
      for (auto& [id, t] : tenants_) t->drained = false;
      if (!tenants_loaded_) refresh_tenants();  // the first read failed: nothing else retries it
      next_poll_ = now + config_.reconciler.poll_interval;
    }
    if (config_.reconciler.resync_interval.count() > 0 && now >= next_resync_) {
      next_resync_ = now + config_.reconciler.resync_interval;
      db_.post([](Store& store) {
        try {
          logging::info("resync", {{"queued", store.queue_resync()}});
        } catch (const std::exception& e) {
          logging::error("resync_failed", {{"error", e.what()}});
        }
      });
    }
    if (tenants_loaded_ && !heartbeat_in_flight_ && now >= next_heartbeat_) {
      next_heartbeat_ = now + kHeartbeatInterval;
      heartbeat();
    }
    if (tenants_loaded_)
      for (auto& [id, t] : tenants_) {
        sync_scheduler(id, *t, now);  // a lease that may lapse stops sending here
        maybe_claim(id, *t, now);
      }
    maybe_flush(now, false);

    reconcile::SchedulerDecision decision;
    if (pending_records_.size() < kMaxUnwrittenRecords) {
      decision = scheduler_.next(now);
      if (decision.dispatch) {
        dispatch(*decision.dispatch, now);
        continue;
      }
    }

    if (options_.exit_when_idle && tenants_loaded_) {
      if (idle_confirmed_ && locally_idle()) break;
      if (!locally_idle()) {
        idle_confirmed_ = false;
        next_idle_check_.reset();
      } else if (!idle_check_in_flight_ && (!next_idle_check_ || now >= *next_idle_check_)) {
        // Locally nothing is left; ask the database whether any sending tenant still has
        // rows queued (due later, claimed elsewhere, or changed meanwhile).
        idle_check_in_flight_ = true;
        next_idle_check_ = now + kIdleCheckInterval;
        std::weak_ptr<bool> alive = alive_;
        db_.post([this, alive](Store& store) {
          std::size_t pending = 1;
          try {
            pending = store.pending_for_sending_tenants();
          } catch (const std::exception& e) {
            logging::error("idle_check_failed", {{"error", e.what()}});
          }
          asio::post(io_, [this, alive, pending] {
            if (alive.expired() || !*alive.lock()) return;
            idle_check_in_flight_ = false;
            idle_confirmed_ = pending == 0;
            if (pending > 0)
              for (auto& [id, t] : tenants_) t->drained = false;
            kick();
          });
        });
      }
    }

    // A kick during this turn (a completion, a notification) makes this wait return at once.
    const auto wake = next_wake(now, decision);
    co_await wake_->wait_until(wake ? *wake : Instant::max());
  }

  // Draining: nothing new is claimed or sent; requests in flight get shutdown_grace.
  for (auto& [id, t] : tenants_) release_buffer(*t);
  const Instant deadline = clock_.now() + config_.reconciler.shutdown_grace;
  auto in_flight = [&] {
    std::size_t n = 0;
    for (const auto& [id, t] : tenants_) n += t->in_flight.size();
    return n;
  };
  while (in_flight() > 0 && clock_.now() < deadline) {
    co_await wake_->wait_until(deadline);
  }
  if (const auto abandoned = in_flight(); abandoned > 0)
    logging::warn("abandoned_in_flight", {{"count", abandoned},
                                          {"note", "their leases lapse and the rows are sent again"}});
  // Write what is known; the worker runs every queued job before it stops.
  while (!pending_records_.empty() || !pending_events_.empty() || flush_in_flight_) {
    if (!flush_in_flight_) maybe_flush(clock_.now(), true);
    if (flush_retry_at_ && clock_.now() > deadline + std::chrono::seconds{5}) {
      logging::error("unwritten_at_exit", {{"records", pending_records_.size()},
                                           {"note", "the database is unavailable; these rows are sent again "
                                                    "after restart"}});
      break;
    }
    co_await wake_->wait_until(clock_.now() + milliseconds{20});
  }
  // Hand every tenant over at once rather than after the lease lapses.
  db_.post([](Store& store) {
    try {
      store.release_all_tenants();
    } catch (const std::exception& e) {
      logging::warn("release_tenants_failed", {{"error", e.what()}, {"note", "the leases lapse on their own"}});
    }
  });
  logging::info("stopped", {{"sent", stats_.sent}, {"recorded", stats_.recorded}, {"invalid", stats_.invalid},
                            {"batches", stats_.record_batches}});
}

}  // namespace callbackd::engine
