#include "core/reconcile/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace callbackd::reconcile {

FairScheduler::FairScheduler(const ReconcilerConfig& config, PacerTuning tuning, EndpointHoldTuning endpoint_tuning)
    : config_(config), tuning_(tuning), global_(config.global_rate_per_second), endpoint_(endpoint_tuning) {}

void FairScheduler::upsert_tenant(const std::string& tenant_id, const TenantSettings& settings) {
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) {
    tenants_.emplace(tenant_id,
                     Tenant{TenantState(settings.mode, settings.max_in_flight, config_.max_in_flight_per_tenant,
                                        config_.tenant_probe_interval),
                            Pacer(settings.rate_per_minute, tuning_), settings.max_in_flight, 0, std::nullopt});
    if (auto restored = restored_.find(tenant_id); restored != restored_.end()) {
      resume(tenants_.find(tenant_id)->second.pacer, restored->second.first, restored->second.second);
      restored_.erase(restored);
    }
    return;
  }
  Tenant& t = it->second;
  t.tenant_max_in_flight = settings.max_in_flight;
  t.state.set_mode(settings.mode);
  t.state.set_max_in_flight(settings.max_in_flight, config_.max_in_flight_per_tenant);
  if (t.pacer.rate_per_minute() != settings.rate_per_minute) t.pacer.set_rate_per_minute(settings.rate_per_minute);
}

void FairScheduler::reconfigure(const ReconcilerConfig& config) {
  if (config.global_rate_per_second != config_.global_rate_per_second)
    global_ = GlobalCap(config.global_rate_per_second);
  config_ = config;
  for (auto& [id, t] : tenants_) {
    t.state.set_max_in_flight(t.tenant_max_in_flight, config_.max_in_flight_per_tenant);
    t.state.set_probe_interval(config_.tenant_probe_interval);
  }
}

void FairScheduler::remove_tenant(const std::string& tenant_id) {
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) return;
  with_rows_.erase(it);
  tenants_.erase(it);
}

void FairScheduler::set_due_rows(const std::string& tenant_id, std::size_t due_now,
                                 std::optional<Instant> next_due_at) {
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) return;
  it->second.due_rows = due_now;
  it->second.next_due_at = next_due_at;
  index_rows(it);
}

void FairScheduler::index_rows(Tenants::iterator it) {
  if (it->second.due_rows > 0 || it->second.next_due_at)
    with_rows_.insert(it);
  else
    with_rows_.erase(it);
}

void FairScheduler::assume_sent(const std::string& tenant_id, std::vector<Instant> sends) {
  auto it = tenants_.find(tenant_id);
  if (it != tenants_.end()) it->second.pacer.assume_sent(std::move(sends));
}

void FairScheduler::restore_pause(const std::string& tenant_id, TenantPause pause) {
  auto it = tenants_.find(tenant_id);
  if (it != tenants_.end()) it->second.state.restore_pause(std::move(pause));
}

void FairScheduler::resume(const std::string& tenant_id) {
  auto it = tenants_.find(tenant_id);
  if (it != tenants_.end()) it->second.state.resume();
}

std::optional<Instant> FairScheduler::ready_at(const Tenant& tenant, Instant now) {
  if (!tenant.state.sends()) return std::nullopt;
  // No due row: ready when the next one falls due (the caller refreshes counts then).
  Instant at = now;
  if (tenant.due_rows == 0) {
    if (!tenant.next_due_at || *tenant.next_due_at <= now) return std::nullopt;
    at = *tenant.next_due_at;
  }
  const SendPermission permission = tenant.state.permission(at);
  if (!permission.allowed) {
    if (!permission.not_before) return std::nullopt;  // in-flight full or probe out: an event
    at = std::max(at, *permission.not_before);
  }
  return tenant.pacer.next_slot(at);
}

SchedulerDecision FairScheduler::next(Instant now) {
  SchedulerDecision decision;
  if (with_rows_.empty()) return decision;

  // While WeChat Pay is unreachable, the endpoint's probe is the only request: a tenant ready
  // before it may go waits for it (or for the probe in flight to come back).
  const EndpointPermission endpoint = endpoint_.permission(now);
  // The daemon-wide cap and the egress lanes: a slot of both, shared in round-robin order.
  const Instant global_slot = std::max(global_.next_slot(now), egress_.next_slot(now));
  std::optional<Instant> earliest;
  // Round robin: start after the tenant served last, wrap around once. Only tenants with rows:
  // every other one would be skipped (ready_at() is nullopt without rows).
  auto next_with_rows = with_rows_.upper_bound(last_served_);
  for (std::size_t i = 0; i < with_rows_.size(); ++i, ++next_with_rows) {
    if (next_with_rows == with_rows_.end()) next_with_rows = with_rows_.begin();
    const Tenants::iterator it = *next_with_rows;
    Tenant& tenant = it->second;
    std::optional<Instant> ready = ready_at(tenant, now);
    if (!ready) continue;
    if (!endpoint.allowed) {
      if (!endpoint.not_before) continue;  // the probe's completion wakes the loop
      ready = std::max(*ready, *endpoint.not_before);
    }
    if (*ready > now || global_slot > now) {
      earliest = earliest ? std::min(*earliest, *ready) : *ready;
      continue;
    }
    // Ready now: take its slot, the global slot and its in-flight place, in that order of
    // checks above, so a tenant that cannot send never consumed a global slot.
    const bool probe = tenant.state.permission(now).probe;
    const bool took_slot = tenant.pacer.try_acquire(now);
    const bool took_global = global_.try_acquire(now);
    const std::optional<std::size_t> source = egress_.try_acquire(now);
    CALLBACKD_ASSERT(took_slot && took_global && source);
    tenant.state.on_sent(now, probe);
    endpoint_.on_sent(now, endpoint.probe);
    --tenant.due_rows;
    last_served_ = it->first;
    decision.dispatch = Dispatch{it->first, probe, endpoint.probe, *source};
    index_rows(it);  // last: it may erase next_with_rows
    return decision;
  }
  if (earliest) decision.wake_at = std::max(*earliest, global_slot);
  return decision;
}

void FairScheduler::written(const std::string& tenant_id, std::size_t source, Instant slot, Instant written_at) {
  egress_.written(source, slot, written_at);
  if (auto it = tenants_.find(tenant_id); it != tenants_.end()) it->second.pacer.written(slot, written_at);
}

TenantTransition FairScheduler::on_finished(const std::string& tenant_id, const FinishedAttempt& attempt, Instant now) {
  // First, and also for a tenant deleted meanwhile: its probe must come back to the hold.
  endpoint_.on_finished(attempt.reach, attempt.endpoint_probe, now, attempt.jitter01, attempt.row);
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) return TenantTransition::none;
  Tenant& tenant = it->second;
  if (attempt.outcome == wechatpay::OutcomeKind::rate_limited) {
    std::optional<Duration> retry_after;
    if (attempt.retry_after) retry_after = Duration{*attempt.retry_after};
    // The source address's limit (several tenants refused through it) lowers its lane, not
    // this tenant's rate.
    if (!egress_.on_rate_limited(attempt.source, tenant_id, now, attempt.sent_at, retry_after))
      tenant.pacer.on_rate_limited(now, attempt.sent_at, retry_after);
  }
  return tenant.state.on_finished(attempt.outcome, attempt.probe, now, attempt.error_code, attempt.error_message,
                                  attempt.jitter01);
}

void FairScheduler::resume(Pacer& pacer, const LearnedRate& learned, Instant read_at) {
  const auto rate = restored_rate(learned.rate_per_minute.value_or(pacer.rate_per_minute()),
                                  static_cast<double>(pacer.rate_per_minute()), learned.age);
  if (rate) pacer.resume_at(*rate, read_at);
}

void FairScheduler::restore_learned(const std::map<std::string, LearnedRate>& tenants,
                                    const std::map<std::size_t, LearnedRate>& lanes, Instant now) {
  for (const auto& [id, learned] : tenants) {
    if (auto it = tenants_.find(id); it != tenants_.end())
      resume(it->second.pacer, learned, now);
    else
      restored_[id] = {learned, now};
  }
  for (const auto& [lane, learned] : lanes)
    if (learned.rate_per_minute) egress_.restore(lane, *learned.rate_per_minute, learned.age, now);
}

std::map<std::string, double> FairScheduler::learned_tenant_rates(Instant now) const {
  std::map<std::string, double> out;
  for (const auto& [id, t] : tenants_) {
    if (!t.state.sends()) continue;  // another instance's (or paused): not ours to write
    const double rate = t.pacer.effective_rate_per_minute(now);
    if (rate < static_cast<double>(t.pacer.rate_per_minute())) out[id] = rate;
  }
  return out;
}

double FairScheduler::sending_rate_per_minute(const std::string& tenant_id, Instant now) const {
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) return 0;
  // The egress caps and the global cap are both shared round-robin by the tenants with rows.
  std::optional<double> shared = egress_.effective_rate_per_minute(now);
  if (config_.global_rate_per_second > 0) {
    const double global = config_.global_rate_per_second * 60.0;
    shared = shared ? std::min(*shared, global) : global;
  }
  return reconcile::sending_rate_per_minute(it->second.pacer.effective_rate_per_minute(now), shared, with_rows_.size());
}

const TenantState* FairScheduler::tenant_state(const std::string& tenant_id) const {
  auto it = tenants_.find(tenant_id);
  return it == tenants_.end() ? nullptr : &it->second.state;
}

const Pacer* FairScheduler::pacer(const std::string& tenant_id) const {
  auto it = tenants_.find(tenant_id);
  return it == tenants_.end() ? nullptr : &it->second.pacer;
}

std::vector<TenantSnapshot> FairScheduler::snapshot(Instant now) const {
  std::vector<TenantSnapshot> out;
  out.reserve(tenants_.size());
  for (const auto& [id, t] : tenants_) {
    out.push_back(TenantSnapshot{id, t.state.mode(), t.pacer.effective_rate_per_minute(now), t.pacer.throttled(now),
                                 t.state.paused_by_error(), t.state.in_flight(), t.due_rows});
  }
  return out;
}

}  // namespace callbackd::reconcile
