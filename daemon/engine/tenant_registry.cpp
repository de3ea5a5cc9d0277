#include "engine/tenant_registry.h"

#include <algorithm>

#include "core/logging/event.h"
#include "core/reconcile/ownership_policy.h"
#include "core/reconcile/pause_merge.h"
#include "core/reconcile/tenant_state.h"
#include "engine/record_batcher.h"

namespace callbackd::engine {

using logging::log_id;
using reconcile::Instant;
using std::chrono::milliseconds;

namespace {

bool same_credentials(const TenantRow& a, const TenantRow& b) {
  auto keys = [](const TenantRow& r) {
    std::vector<std::pair<std::string, std::string>> k;
    for (const auto& e : r.extra_keys) k.emplace_back(e.key_id, e.key_path);
    return k;
  };
  // Platform certificates count by serial and PEM: a download that only moved their fetch
  // times changes nothing to verify with.
  auto certificates = [](const TenantRow& r) {
    std::vector<std::pair<std::string, std::string>> c;
    for (const auto& e : r.platform_certificates) c.emplace_back(e.serial, e.pem);
    return c;
  };
  return a.caller_mchid == b.caller_mchid && a.merchant_serial_no == b.merchant_serial_no &&
         a.private_key_path == b.private_key_path && a.wechatpay_key_id == b.wechatpay_key_id &&
         a.wechatpay_key_path == b.wechatpay_key_path && a.apiv3_key_path == b.apiv3_key_path && keys(a) == keys(b) &&
         certificates(a) == certificates(b);
}

std::string join_problems(const std::vector<Problem>& problems) {
  std::string s;
  for (const auto& p : problems) s += (s.empty() ? "" : "; ") + p.to_string();
  return s;
}

struct TenantsRead {
  std::vector<TenantRow> rows;
  std::map<std::string, reconcile::StoredTenantPause> pauses;
};

}  // namespace

TenantRegistry::TenantRegistry(boost::asio::io_context& io, Clock& clock, DbWorker& db,
                               std::weak_ptr<const void> lifetime, const Config& config,
                               reconcile::FairScheduler& scheduler, RecordBatcher& records, std::mt19937_64& random,
                               std::function<void()> wake, std::function<void()> on_loaded,
                               KeyLoader::Runner run_key_load)
    : io_(io),
      clock_(clock),
      db_(db),
      lifetime_(std::move(lifetime)),
      config_(config),
      scheduler_(scheduler),
      records_(records),
      random_(random),
      wake_(std::move(wake)),
      on_loaded_(std::move(on_loaded)),
      keys_(
          io, lifetime_, [this](KeysLoaded loaded) { keys_loaded(std::move(loaded)); }, std::move(run_key_load)) {}

TenantRuntime* TenantRegistry::find(const std::string& tenant_id) {
  auto it = tenants_.find(tenant_id);
  return it == tenants_.end() ? nullptr : it->second.get();
}

const TenantRuntime* TenantRegistry::find(const std::string& tenant_id) const {
  auto it = tenants_.find(tenant_id);
  return it == tenants_.end() ? nullptr : it->second.get();
}

void TenantRegistry::refresh() {
  if (refresh_pending_) return;
  refresh_pending_ = true;
  db_.call_then(
      io_, lifetime_,
      [](Store& store) {
        return TenantsRead{store.tenants(), store.tenant_pauses()};
      },
      [this](Result<TenantsRead, DatabaseError> read) {
        refresh_pending_ = false;
        if (read) {
          apply(std::move(read.value().rows), std::move(read.value().pauses), reload_keys_);
          reload_keys_ = false;
        } else {
          logging::error("tenants_read_failed", {{"error", read.error().what()}});
        }
        wake_();
      });
}

void TenantRegistry::apply(std::vector<TenantRow> rows, std::map<std::string, reconcile::StoredTenantPause> pauses,
                           bool reload_keys) {
  const Instant now = clock_.now();
  std::set<std::string> seen;
  for (auto& row : rows) {
    seen.insert(row.tenant_id);
    auto [it, is_new] = tenants_.try_emplace(row.tenant_id, nullptr);
    if (is_new) it->second = std::make_unique<TenantRuntime>();
    TenantRuntime& t = *it->second;
    const bool row_changed = is_new || !same_credentials(t.row, row);
    t.row = std::move(row);
    if (row_changed || reload_keys) load_credentials(t, is_new, row_changed, pauses);
    t.scheduled_mode.reset();  // settings may have changed: sync_scheduler() tells the scheduler
    sync_scheduler(t, now);
    attention_.wake(t.id());  // its mode, rate or pause may have changed: the loop looks again
    apply_stored_pause(t, is_new, pauses, now);
  }
  for (auto it = tenants_.begin(); it != tenants_.end();) {
    if (seen.count(it->first)) {
      ++it;
      continue;
    }
    release_buffer(*it->second);
    forget_key_load(*it->second);
    scheduler_.remove_tenant(it->first);
    attention_.forget(it->first);
    logging::info("tenant_removed", {{"tenant", log_id(it->first)}});
    it = tenants_.erase(it);
  }
  loaded_ = true;
  on_loaded_pending_ = true;
  notify_loaded_when_keys_are();
}

void TenantRegistry::notify_loaded_when_keys_are() {
  if (!on_loaded_pending_ || keys_loading_ > 0) return;
  on_loaded_pending_ = false;
  if (on_loaded_) on_loaded_();
}

void TenantRegistry::apply_stored_pause(TenantRuntime& t, bool is_new,
                                        const std::map<std::string, reconcile::StoredTenantPause>& pauses,
                                        Instant now) {
  // The database's pause state wins for tenants we do not send for (their owner keeps it)
  // and at start-up (a restart must not hammer a tenant that was paused for bad credentials).
  // (reconcile::merge_stored_pause, pause_merge.h).
  const auto* state = scheduler_.tenant_state(t.id());
  const auto p = pauses.find(t.id());
  switch (reconcile::merge_stored_pause(
      {p != pauses.end(), is_new, t.owned, state != nullptr, state && state->paused_by_error()})) {
    case reconcile::PauseMerge::restore:
      scheduler_.restore_pause(
          t.id(), reconcile::TenantPause{p->second.error_code, p->second.reason, now, now + p->second.probe_in});
      break;
    case reconcile::PauseMerge::resume:
      scheduler_.resume(t.id());
      break;
    case reconcile::PauseMerge::keep:
      break;
  }
}

void TenantRegistry::load_credentials(TenantRuntime& t, bool is_new, bool row_changed,
                                      const std::map<std::string, reconcile::StoredTenantPause>& pauses) {
  if (row_changed) {
    // The keys of the old row are not this row's: nothing is signed until the new ones load.
    // (A SIGHUP re-check of the same row keeps sending with the keys it has meanwhile.)
    t.credentials.reset();
    t.credentials_problem.clear();
  }
  if (!t.key_load) ++keys_loading_;
  const auto stored = pauses.find(t.id());
  t.key_load = TenantRuntime::KeyLoad{
      ++key_generation_, is_new,
      stored != pauses.end() ? std::optional<std::string>(stored->second.error_code) : std::nullopt};
  keys_.load(KeyLoadRequest{t.id(), t.key_load->generation, t.row, config_.credentials_dir});
}

void TenantRegistry::forget_key_load(TenantRuntime& t) {
  if (!t.key_load) return;
  t.key_load.reset();  // its answer finds no load of that generation and is dropped
  --keys_loading_;
}

void TenantRegistry::keys_loaded(KeysLoaded loaded) {
  TenantRuntime* t = find(loaded.tenant_id);
  // Removed meanwhile, or its row changed again (SIGHUP): the newer load's answer is the one.
  if (!t || !t->key_load || t->key_load->generation != loaded.generation) return;
  const TenantRuntime::KeyLoad load = *t->key_load;
  forget_key_load(*t);
  apply_credentials(*t, load, std::move(loaded.credentials));
  sync_scheduler(*t, clock_.now());
  notify_loaded_when_keys_are();
  wake_();
}

void TenantRegistry::apply_credentials(TenantRuntime& t, const TenantRuntime::KeyLoad& load,
                                       Result<TenantCredentials, std::vector<Problem>> loaded) {
  const std::string& id = t.id();
  if (!loaded) {
    t.credentials.reset();
    t.credentials_problem = join_problems(loaded.error());
    // Bad credentials pause the tenant, not the daemon: the others go on. The owner records
    // it (see LeaseKeeper); every instance holds it back.
    if (t.owned) pause(id, "CREDENTIALS_INVALID", t.credentials_problem, true);
    return;
  }
  t.credentials = std::make_shared<const TenantCredentials>(std::move(loaded).value());
  t.credentials_problem.clear();
  // Resume a tenant paused by the daemon when its keys changed or its key files load now
  // (reconcile::resume_when_keys_load, pause_merge.h).
  if (reconcile::resume_when_keys_load(load.is_new, load.stored_pause_code ? &*load.stored_pause_code : nullptr)) {
    if (const auto* state = scheduler_.tenant_state(id); state && state->paused_by_error()) {
      scheduler_.resume(id);
      resumed(id, "credentials changed");
    }
  }
  logging::info(
      "tenant_loaded",
      {{"tenant", log_id(id)}, {"mode", tenant_mode_name(t.row.mode)}, {"rate_per_minute", t.row.rate_per_minute}});
}

TenantMode TenantRegistry::scheduled_mode(const TenantRuntime& t, Instant now) const {
  if (t.row.mode == TenantMode::paused) return TenantMode::paused;
  // Its keys are loading and it has none yet: nothing to sign with, and no reason to pause it.
  if (t.key_load && !t.credentials) return TenantMode::observe;
  // Not ours (or not surely ours any more): plan, never send. The scheduler keeps the tenant,
  // so its pacer history survives a lapse and a regained lease.
  if (!t.owned || t.releasing || now >= t.send_until) return TenantMode::observe;
  return t.row.mode;
}

int TenantRuntime::sending_rate_per_minute() const {
  int rate = 0;
  for (const int share : shares)
    if (!releasing_shares.count(share)) rate += reconcile::share_rate(row.rate_per_minute, share);
  return rate > 0 ? rate : row.rate_per_minute;
}

void TenantRegistry::sync_scheduler(TenantRuntime& t, Instant now) {
  const TenantMode mode = scheduled_mode(t, now);
  const int rate = t.sending_rate_per_minute();
  if (t.scheduled_mode == mode && t.scheduled_rate == rate) return;
  t.scheduled_mode = mode;
  t.scheduled_rate = rate;
  scheduler_.upsert_tenant(t.id(), reconcile::TenantSettings{mode, rate, t.row.max_in_flight});
  if (mode != TenantMode::apply)
    release_buffer(t);
  else
    attention_.wake(t.id());  // it may have slept while it did not send here (claim_gate.h)
}

void TenantRegistry::sync_scheduler_all(Instant now) {
  for (auto& [id, t] : tenants_) sync_scheduler(*t, now);
}

void TenantRegistry::wake_up(TenantRuntime& t) {
  t.drained = false;
  attention_.wake(t.id());
}

void TenantRegistry::wake_up_all() {
  for (auto& [id, t] : tenants_) wake_up(*t);
}

void TenantRegistry::update_due(TenantRuntime& t) {
  scheduler_.set_due_rows(t.id(), t.buffer.size(), t.buffer.empty() ? t.next_due_at : std::nullopt);
}

void TenantRegistry::release_buffer(TenantRuntime& t) {
  if (t.buffer.empty()) return;
  std::vector<std::int64_t> tokens;
  tokens.reserve(t.buffer.size());
  for (const auto& item : t.buffer) tokens.push_back(item.claim_token);
  t.buffer.clear();
  update_due(t);
  release_claims(std::move(tokens));
}

void TenantRegistry::release_expired_claims(TenantRuntime& t, Instant now) {
  std::vector<std::int64_t> tokens;
  // Claims are buffered in the order they were asked for, so send_by never decreases.
  while (!t.buffer.empty() && t.buffer.front().send_by <= now) {
    tokens.push_back(t.buffer.front().claim_token);
    t.buffer.pop_front();
  }
  if (tokens.empty()) return;
  logging::info("claims_expired_in_buffer",
                {{"tenant", log_id(t.id())},
                 {"rows", tokens.size()},
                 {"note", "the pacer is slower than when they were claimed; given back and claimed again later"}});
  update_due(t);
  release_claims(std::move(tokens));
}

void TenantRegistry::release_claims(std::vector<std::int64_t> claim_tokens) {
  if (claim_tokens.empty()) return;
  const std::size_t claims = claim_tokens.size();
  db_.call_then(
      io_, lifetime_, [tokens = std::move(claim_tokens)](Store& store) { store.release(tokens); },
      log_if_failed(logging::Level::warn, "release_failed",
                    {{"claims", claims}, {"note", "the leases lapse on their own; the rows are only delayed"}}));
}

void TenantRegistry::pause(const std::string& tenant_id, const std::string& code, const std::string& reason,
                           bool restore_in_scheduler) {
  TenantRuntime* t = find(tenant_id);
  if (!t) return;
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
  release_buffer(*t);
  records_.add_event({tenant_id, "tenant_error", code, reason});
  db_.call_then(
      io_, lifetime_,
      [tenant_id, code, reason, probe_in](Store& store) { store.pause_tenant(tenant_id, code, reason, probe_in); },
      log_if_failed(logging::Level::error, "tenant_pause_failed", {{"tenant", log_id(tenant_id)}}));
  logging::warn("tenant_paused", {{"tenant", log_id(tenant_id)}, {"code", code}, {"reason", reason}});
}

void TenantRegistry::certificate_used(const std::string& tenant_id, const std::string& serial) {
  TenantRuntime* t = find(tenant_id);
  if (!t || serial.empty() || !t->certificates_used.insert(serial).second) return;
  db_.call_then(
      io_, lifetime_, [tenant_id, serial](Store& store) { store.platform_certificate_used(tenant_id, serial); },
      log_if_failed(logging::Level::warn, "platform_certificate_use_not_recorded", {{"tenant", log_id(tenant_id)}}));
}

void TenantRegistry::resumed(const std::string& tenant_id, std::string_view reason) {
  records_.add_event({tenant_id, "tenant_resumed", "", std::string(reason)});
  db_.call_then(
      io_, lifetime_, [tenant_id](Store& store) { store.resume_tenant(tenant_id); },
      log_if_failed(logging::Level::error, "tenant_resume_failed", {{"tenant", log_id(tenant_id)}}));
  logging::info("tenant_resumed", {{"tenant", log_id(tenant_id)}, {"reason", reason}});
}

}  // namespace callbackd::engine
