#include "engine/reconciler.h"

#include "core/logging/event.h"
#include "core/reconcile/claim_gate.h"
#include "core/reconcile/claim_policy.h"
#include "core/reconcile/work_verdict.h"

namespace callbackd::engine {

namespace asio = boost::asio;
using reconcile::Instant;
using std::chrono::milliseconds;
// Ids from SQL in log lines: one bare token each (a hostile id cannot forge a field).
using logging::log_id;

namespace {

constexpr milliseconds kIdleCheckInterval{250};
// Tenants per claim statement: one statement claims for every tenant that needs rows on a
// turn (after a poll, all of them), in chunks of this many so that one statement stays short
// (a NOTIFY's claim queued behind it on the database thread waits for it) and its JSON small.
constexpr std::size_t kMaxTenantsPerClaim = 1000;

}  // namespace

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
      random_(options_.random_seed ? *options_.random_seed : std::random_device{}()),
      lifetime_(std::make_shared<const bool>(true)),
      wake_(clock.make_timer(io)),
      records_(io, clock, db, lifetime_, stats_, [this] { kick(); }),
      tenants_(
          io, clock, db, lifetime_, config_, scheduler_, records_, random_, [this] { kick(); },
          options_.on_tenants_loaded, options_.run_key_load),
      leases_(io, clock, db, lifetime_, config_, tenants_, scheduler_, [this] { kick(); }),
      certificates_(io, clock, client, db, lifetime_, config_, tenants_, stats_, [this] { kick(); }),
      dispatcher_(io, clock, client, lifetime_, config_, policy_, options_, tenants_, certificates_, scheduler_,
                  records_, stats_, random_, [this] { kick(); }),
      learned_(io, clock, db, lifetime_, config_, scheduler_),
      reader_(io, clock, client, db, lifetime_, config_, options_, tenants_, scheduler_, leases_, records_, stats_,
              [this] { kick(); }) {
  // One lane per source address (the client binds lane i to source_addresses[i]); read at start.
  scheduler_.set_egress(reconcile::EgressLanes(std::max<std::size_t>(1, config_.wechatpay.source_addresses.size()),
                                               config_.wechatpay.egress_rate_per_minute,
                                               reconcile::EgressLanes::Learn::yes));
}

// Whatever is still out (a database answer, a request) finds the lifetime expired and is
// dropped.
Reconciler::~Reconciler() { lifetime_.reset(); }

void Reconciler::kick() { wake_->wake(); }

void Reconciler::stop() {
  if (stopping_) return;
  stopping_ = true;
  logging::info("stopping", {{"in_flight", dispatcher_.in_flight()}, {"unwritten_records", records_.unwritten()}});
  kick();
}

void Reconciler::reload(Config config) {
  const Instant now = clock_.now();
  leases_.before_reload(now);
  config_ = std::move(config);
  // The client's deadlines are the ones the send margin is derived from: they change together.
  for (const auto& key : client_.reconfigure(config_.wechatpay))
    logging::warn("reload_partial", {{"key", key}, {"note", "read at start only: restart callbackd to apply it"}});
  leases_.after_reload(now);
  policy_ = reconcile::RowPolicy::from_config(config_.reconciler);
  scheduler_.reconfigure(config_.reconciler);
  reader_.reconfigure();
  // Credentials may have moved (credentials_dir) or been replaced in place.
  tenants_.reload_keys();
  tenants_.refresh();
  kick();
}

void Reconciler::on_notification(const std::string& channel, const std::string& tenant_id) {
  if (channel == "callbackd_tenants")
    tenants_.refresh();
  else if (TenantRuntime* t = tenants_.find(tenant_id))
    tenants_.wake_up(*t);
  kick();
}

void Reconciler::on_notifications_missed() {
  tenants_.refresh();
  tenants_.wake_up_all();
  kick();
}

std::vector<reconcile::TenantSnapshot> Reconciler::snapshot() const {
  auto tenants = scheduler_.snapshot(clock_.now());
  for (auto& s : tenants) {
    s.sends_here = s.mode == TenantMode::apply;
    if (const auto* t = tenants_.find(s.tenant_id)) s.mode = t->row.mode;
  }
  return tenants;
}

std::vector<Reconciler::PlatformCertificateSeen> Reconciler::platform_certificates() const {
  std::vector<PlatformCertificateSeen> seen;
  for (const auto& [id, t] : tenants_.all())
    for (const auto& c : t->row.platform_certificates) seen.push_back({id, c.serial, c.expires_at});
  return seen;
}

// ---------------------------------------------------------------------------------------
// Claims

reconcile::ClaimInputs Reconciler::claim_inputs(const TenantRuntime& t, Instant now) const {
  reconcile::ClaimInputs in;
  in.stopping = stopping_;
  in.sends = tenants_.scheduled_mode(t, now) == TenantMode::apply;
  in.claim_pending = t.claim_pending;
  // Rows waiting for their adoption read are claimed rows like the buffered ones.
  in.buffered = t.buffer.size() + reader_.adoption_pending(t.id());
  in.drained = t.drained;
  in.next_due_at = t.next_due_at;
  // At the rate it can send now: its pacer's, or its share of the egress caps and of
  // reconciler.global_rate_per_second if lower (a batch claimed at the tenant's own rate behind
  // a 5-a-minute address or a shared cap would outlast its claim: claim_send_by gives such rows
  // back, and the tenant would claim and give back over and over).
  const bool known = scheduler_.pacer(t.id()) != nullptr;
  in.batch = reconcile::claim_batch(known ? scheduler_.sending_rate_per_minute(t.id(), now) : t.row.rate_per_minute);
  in.endpoint_held = scheduler_.endpoint().held();
  in.endpoint = scheduler_.endpoint().permission(now);
  if (const auto* state = scheduler_.tenant_state(t.id())) {
    in.paused_by_error = state->paused_by_error();
    in.tenant = state->permission(now);
  }
  return in;
}

void Reconciler::claim_for_awake_tenants(Instant now) {
  // Only the tenants the loop looks at (attention.h): a turn costs O(awake tenants), not
  // O(tenants). See claim_gate.h: while WeChat Pay is held or the tenant paused, one row for
  // the probe when it may go, none before.
  std::vector<reconcile::ClaimRequest> requests;
  auto& attention = tenants_.attention();
  for (const auto& id : attention.awake_at(now)) {
    TenantRuntime* t = tenants_.find(id);
    if (!t) {
      attention.forget(id);
      continue;
    }
    ++stats_.tenant_looks;
    tenants_.sync_scheduler(*t, now);  // a lease that may lapse stops sending here
    // Before anything is dispatched this turn: rows whose claim could lapse mid-request go
    // back (a tenant with a buffer is always awake: claim_gate.h).
    tenants_.release_expired_claims(*t, now);
    const reconcile::ClaimInputs in = claim_inputs(*t, now);
    if (const int limit = reconcile::decide_claim(in, now).limit; limit > 0) {
      t->claim_pending = true;
      requests.push_back({id, limit});
    } else if (const auto rest = reconcile::rest_after_no_claim(in, !t->in_flight.empty(), now); rest.sleeps) {
      attention.sleep(id, rest.until);
    }
  }
  for (std::size_t from = 0; from < requests.size(); from += kMaxTenantsPerClaim) {
    const std::size_t to = std::min(requests.size(), from + kMaxTenantsPerClaim);
    claim({requests.begin() + static_cast<std::ptrdiff_t>(from), requests.begin() + static_cast<std::ptrdiff_t>(to)},
          now);
  }
}

void Reconciler::claim(std::vector<reconcile::ClaimRequest> requests, Instant now) {
  const auto lease = leases_.claim_lease(now);
  const Instant send_by = reconcile::claim_send_by(now, lease, leases_.timing(now).send_margin);
  auto call = [requests, lease](Store& store) { return store.claim_due(requests, lease); };
  db_.call_then(io_, lifetime_, std::move(call),
                [this, requests, send_by](Result<std::vector<reconcile::ClaimResult>, DatabaseError> claimed) {
                  const Instant answered = clock_.now();
                  if (!claimed)
                    logging::error("claim_failed", {{"tenants", requests.size()},
                                                    {"first_tenant", log_id(requests.front().tenant_id)},
                                                    {"error", claimed.error().what()}});
                  else if (claimed->size() != requests.size())  // Store::claim_due: one result per request
                    logging::error(
                        "database_call_bug",
                        {{"call", "claim_due"}, {"requests", requests.size()}, {"results", claimed->size()}});
                  for (std::size_t i = 0; i < requests.size(); ++i) {
                    TenantRuntime* tenant = tenants_.find(requests[i].tenant_id);
                    if (!tenant) continue;  // removed meanwhile: its claims lapse
                    tenant->claim_pending = false;
                    if (claimed && i < claimed->size() && (*claimed)[i].tenant_id == requests[i].tenant_id)
                      on_claimed(*tenant, std::move((*claimed)[i]), requests[i].limit, answered, send_by);
                    else
                      tenant->drained = true;  // the poll tries again
                  }
                  kick();
                });
}

void Reconciler::on_claimed(TenantRuntime& t, reconcile::ClaimResult result, int asked, Instant now, Instant send_by) {
  // A full batch: claim again. Rows the change budget held were claimed too (a batch of held
  // rows must not make a tenant with thousands more to hold wait for the poll each time).
  t.drained = static_cast<long long>(result.items.size()) + result.held < asked;
  t.next_due_at = result.next_due_in ? std::optional<Instant>(now + *result.next_due_in) : std::nullopt;
  if (result.started_holding)  // once per holding episode: the database knows when it starts
    logging::warn("changes_held",
                  {{"tenant", log_id(t.id())},
                   {"held", result.held},
                   {"hosts", reconcile::held_hosts_summary(result.held_moves)},
                   {"note", "tenants.max_changes_per_hour reached; further changes wait for `callbackd approve " +
                                t.id() + "` or an undo (docs/sql.md)"}});
  std::vector<std::int64_t> give_back;
  std::vector<reconcile::WorkItem> nothing_to_send;
  for (auto& item : result.items) {
    if (stopping_ || tenants_.scheduled_mode(t, now) != TenantMode::apply ||
        (scheduler_.endpoint().held() && !t.buffer.empty())) {  // claimed just before the hold
      give_back.push_back(item.claim_token);
      continue;
    }
    // The same verdict `plan` shows: input is never trusted (an invalid row is recorded with
    // the reason and never sent, without taking a pacer slot), and an entry whose row needs
    // nothing is settled without an attempt.
    const auto verdict = reconcile::judge_work_item(item.sub_mchid, item.notify_url, item.desired, item.recorded,
                                                    result.allowed_hosts, item.resync);
    if (verdict.action == reconcile::WorkAction::drop) {
      logging::debug(
          "row_dropped",
          {{"tenant", log_id(t.id())}, {"mchid", log_id(item.sub_mchid)}, {"reason", verdict.reason_name()}});
      nothing_to_send.push_back(std::move(item));
      continue;
    }
    if (verdict.action == reconcile::WorkAction::mark_invalid) {
      reconcile::AttemptRecord rec =
          reconcile::attempt_record_for(item, wechatpay::outcome_name(wechatpay::OutcomeKind::invalid));
      rec.error_code = verdict.invalid->code;
      rec.error_message = verdict.invalid->message;
      rec.decision = reconcile::decide_after_attempt({wechatpay::OutcomeKind::invalid, std::nullopt, item.attempts},
                                                     policy_, now, 0.0);
      ++stats_.invalid;
      logging::warn(
          "row_invalid",
          {{"tenant", log_id(t.id())}, {"mchid", log_id(item.sub_mchid)}, {"error", verdict.invalid->message}});
      if (options_.on_row_moved) options_.on_row_moved(t.id(), rec.state_before, rec.decision.state);
      records_.add(std::move(rec));
      continue;
    }
    // Adoption (live_reader.h): before the first POST of a row never applied, read what WeChat
    // Pay holds; the reader sends it on, or records it adopted.
    // A tenant paused by an error claims one row for its probe: that goes out as it is.
    const auto* state = scheduler_.tenant_state(t.id());
    if (result.adopt_existing && verdict.send_reason == reconcile::SendReason::never_applied && item.attempts == 0 &&
        !t.in_flight.count(item.sub_mchid) && !reader_.already_read(item) && !(state && state->paused_by_error())) {
      reader_.read_before_send(t, std::move(item), now);
      continue;
    }
    if (t.in_flight.count(item.sub_mchid)) {
      // Our own earlier claim of this row is still in flight (its lease lapsed): the newer
      // claim fences the older attempt out, and the row is sent again with current values.
      logging::warn("reclaimed_in_flight", {{"tenant", log_id(t.id())}, {"mchid", log_id(item.sub_mchid)}});
    }
    item.send_by = send_by;
    t.buffer.push_back(std::move(item));
  }
  if (!nothing_to_send.empty()) {
    const std::size_t entries = nothing_to_send.size();
    db_.call_then(
        io_, lifetime_, [items = std::move(nothing_to_send)](Store& store) { store.drop(items); },
        log_if_failed(logging::Level::warn, "drop_failed",
                      {{"entries", entries}, {"note", "the leases lapse and the entries are judged again"}}));
  }
  tenants_.release_claims(std::move(give_back));
  tenants_.update_due(t);
}

// ---------------------------------------------------------------------------------------
// The loop

void Reconciler::poll_and_resync(Instant now) {
  if (now >= next_poll_) {
    if (!tenants_.loaded()) tenants_.refresh();  // the first read failed: nothing else retries it
    next_poll_ = now + config_.reconciler.poll_interval;
    if (!poll_in_flight_) poll();
  }
  if (config_.reconciler.resync_interval.count() > 0 && now >= next_resync_) {
    next_resync_ = now + config_.reconciler.resync_interval;
    db_.call_then(
        io_, lifetime_, [](Store& store) { return store.queue_resync(); },
        [](const Result<std::size_t, DatabaseError>& queued) {
          if (queued)
            logging::info("resync", {{"queued", *queued}});
          else
            logging::error("resync_failed", {{"error", queued.error().what()}});
        });
  }
}

void Reconciler::poll() {
  // The safety net behind LISTEN/NOTIFY: the tenants with due entries look for them again.
  // Asking the database which ones costs one short statement, where a claim for every tenant
  // cost a long one and a look at each (an idle poll over 10,000 tenants).
  poll_in_flight_ = true;
  db_.call_then(
      io_, lifetime_, [](Store& store) { return store.due_tenants(); },
      [this](Result<std::vector<std::string>, DatabaseError> due) {
        poll_in_flight_ = false;
        if (due) {
          for (const auto& id : *due)
            if (TenantRuntime* t = tenants_.find(id)) tenants_.wake_up(*t);
        } else {
          logging::error("poll_failed",
                         {{"error", due.error().what()}, {"note", "every tenant looks for due rows instead"}});
          tenants_.wake_up_all();
        }
        kick();
      });
}

bool Reconciler::locally_idle() const {
  if (!records_.idle() || tenants_.refresh_pending() || !reader_.idle()) return false;
  // A tenant asleep has no claim out, nothing buffered and nothing in flight
  // (rest_after_no_claim): only the awake ones can hold work.
  for (const auto& id : tenants_.attention().awake())
    if (const TenantRuntime* t = tenants_.find(id);
        t && (t->claim_pending || !t->buffer.empty() || !t->in_flight.empty()))
      return false;
  return true;
}

bool Reconciler::idle_confirmed(Instant now) {
  if (idle_confirmed_ && locally_idle()) return true;
  if (!locally_idle()) {
    idle_confirmed_ = false;
    next_idle_check_.reset();
  } else if (!idle_check_in_flight_ && (!next_idle_check_ || now >= *next_idle_check_)) {
    // Locally nothing is left; ask the database whether any sending tenant still has rows
    // queued (due later, claimed elsewhere, or changed meanwhile).
    idle_check_in_flight_ = true;
    next_idle_check_ = now + kIdleCheckInterval;
    db_.call_then(
        io_, lifetime_, [](Store& store) { return store.pending_for_sending_tenants(); },
        [this](const Result<std::size_t, DatabaseError>& pending) {
          if (!pending) logging::error("idle_check_failed", {{"error", pending.error().what()}});
          idle_check_in_flight_ = false;
          idle_confirmed_ = pending && *pending == 0;
          if (!idle_confirmed_) tenants_.wake_up_all();
          kick();
        });
  }
  return false;
}

std::optional<Instant> Reconciler::next_wake(Instant now, const reconcile::SchedulerDecision& d) const {
  std::optional<Instant> wake = d.wake_at;
  auto earliest = [&](std::optional<Instant> x) {
    if (x && (!wake || *x < *wake)) wake = x;
  };
  // Every instant here is ahead of `now`, or belongs to work in flight whose completion wakes
  // the loop: an instant that has passed would fire at once and spin the loop (issue 13).
  earliest(next_poll_);
  if (config_.reconciler.resync_interval.count() > 0) earliest(next_resync_);
  earliest(records_.wake_at());
  if (!idle_check_in_flight_) earliest(next_idle_check_);
  earliest(leases_.wake_at());
  earliest(learned_.wake_at());
  earliest(next_certificate_refresh_);
  earliest(reader_.wake_at(now));
  // Due rows, the endpoint's next probe, a paused tenant's next probe (claim_gate.h): of the
  // tenants awake; the others sleep until an instant of their own, or until an event.
  earliest(tenants_.attention().next_wake());
  for (const auto& id : tenants_.attention().awake())
    if (const TenantRuntime* t = tenants_.find(id))
      earliest(reconcile::decide_claim(claim_inputs(*t, now), now).wake_at);
  return wake;
}

asio::awaitable<void> Reconciler::run() {
  const Instant start = clock_.now();
  next_poll_ = start;
  next_resync_ = start + config_.reconciler.resync_interval;
  tenants_.refresh();
  while (!stopping_) {
    const Instant now = clock_.now();
    ++stats_.loop_turns;
    poll_and_resync(now);
    leases_.on_turn(now);
    learned_.on_turn(now);
    next_certificate_refresh_ = certificates_.on_turn(now);
    if (tenants_.loaded()) claim_for_awake_tenants(now);
    if (tenants_.loaded()) reader_.on_turn(now, stopping_);
    records_.maybe_flush(now, false);

    reconcile::SchedulerDecision decision;
    if (!records_.backlogged()) {
      decision = scheduler_.next(now);
      if (decision.dispatch) {
        dispatcher_.dispatch(*decision.dispatch, now);
        continue;
      }
    }
    if (options_.exit_when_idle && tenants_.loaded() && idle_confirmed(now)) break;
    // A kick during this turn (a completion, a notification) makes this wait return at once.
    const auto wake = next_wake(now, decision);
    co_await wake_->wait_until(wake ? *wake : Instant::max());
  }
  co_await drain();
  logging::info("stopped", {{"sent", stats_.sent},
                            {"recorded", stats_.recorded},
                            {"invalid", stats_.invalid},
                            {"batches", stats_.record_batches}});
}

asio::awaitable<void> Reconciler::drain() {
  // Nothing new is claimed or sent; requests in flight get shutdown_grace.
  for (auto& [id, t] : tenants_.all()) tenants_.release_buffer(*t);
  reader_.release_all();
  const Instant deadline = clock_.now() + config_.reconciler.shutdown_grace;
  while (dispatcher_.in_flight() + reader_.in_flight() > 0 && clock_.now() < deadline)
    co_await wake_->wait_until(deadline);
  if (const auto abandoned = dispatcher_.in_flight() + reader_.in_flight(); abandoned > 0)
    logging::warn("abandoned_in_flight",
                  {{"count", abandoned}, {"note", "their leases lapse and the rows are sent again"}});
  // Write what is known; the worker runs every queued job before it stops.
  while (!records_.idle()) {
    records_.maybe_flush(clock_.now(), true);
    if (records_.failing() && clock_.now() > deadline + std::chrono::seconds{5}) {
      logging::error("unwritten_at_exit", {{"records", records_.unwritten()},
                                           {"note",
                                            "the database is unavailable; these rows are sent again "
                                            "after restart"}});
      break;
    }
    co_await wake_->wait_until(clock_.now() + milliseconds{20});
  }
  // Hand every tenant over at once rather than after the lease lapses. Not awaited: the
  // daemon's io_context stops when run() returns, and the worker runs every queued job before
  // it stops (after a retry, if the database is back by then). So its failure is said from
  // the database thread.
  db_.post([](Store& store) {
    try {
      store.release_all_tenants();
    } catch (const DatabaseError& e) {
      logging::warn("release_tenants_failed", {{"error", e.what()}, {"note", "the leases lapse on their own"}});
    }
  });
}

}  // namespace callbackd::engine
