#include "memory_store.h"

#include "core/reconcile/ownership_policy.h"

#include <algorithm>

#include "core/error.h"

namespace callbackd::engine_test {

using std::chrono::milliseconds;

namespace {
milliseconds ceil_ms(Duration d) { return std::max(milliseconds{0}, std::chrono::ceil<milliseconds>(d)); }
}  // namespace

MemoryStore::MemoryStore(const engine::Clock& clock, std::string instance)
    : clock_(clock), instance_(std::move(instance)) {}

void MemoryStore::add_tenant(TenantRow row) { tenants_.push_back(std::move(row)); }

TenantRow* MemoryStore::tenant(const std::string& tenant_id) {
  for (auto& row : tenants_)
    if (row.tenant_id == tenant_id) return &row;
  return nullptr;
}

void MemoryStore::set_desired(const std::string& sub_mchid, const std::string& tenant_id,
                              std::optional<std::string> notify_url, std::optional<bool> push_switch) {
  Desired& d = desired_[sub_mchid];
  d.tenant_id = tenant_id;
  d.notify_url = std::move(notify_url);
  d.push_switch = push_switch;
  d.revision = ++revision_seq_;  // every write bumps it (0001's BEFORE trigger)
  // 0002's enqueue trigger: the newest revision, due now, any claim dropped.
  QueueEntry& w = queue_[sub_mchid];
  w.tenant_id = tenant_id;
  w.revision = std::max(w.revision, d.revision);
  w.due_at = now();
  w.claimed_by.reset();
  w.claim_token = 0;
  w.lease_until = {};
  w.resync = false;
}

std::vector<TenantRow> MemoryStore::tenants() {
  count_call(__func__);
  statements_ += 3;  // tenants, their extra keys and platform certificates (pg/tenants.cpp)
  std::vector<TenantRow> rows = tenants_;
  std::sort(rows.begin(), rows.end(), [](const TenantRow& a, const TenantRow& b) { return a.tenant_id < b.tenant_id; });
  return rows;
}

std::map<std::string, reconcile::StoredTenantPause> MemoryStore::tenant_pauses() {
  count_call(__func__);
  ++statements_;
  std::map<std::string, reconcile::StoredTenantPause> out;
  for (const auto& [id, p] : pauses_)
    out.emplace(id, reconcile::StoredTenantPause{p.error_code, p.reason, ceil_ms(p.next_probe_at - now())});
  return out;
}

void MemoryStore::pause_tenant(const std::string& tenant_id, const std::string& error_code, const std::string& reason,
                               milliseconds probe_in) {
  count_call(__func__);
  ++statements_;
  // A tenant deleted meanwhile is not resurrected.
  if (std::none_of(tenants_.begin(), tenants_.end(), [&](const TenantRow& t) { return t.tenant_id == tenant_id; }))
    return;
  auto [it, inserted] = pauses_.try_emplace(tenant_id);
  Pause& p = it->second;
  if (inserted) p.paused_at = now();  // kept across the failed probes that re-pause it
  p.error_code = error_code;
  p.reason = !reason.empty() ? reason : !error_code.empty() ? error_code : "tenant error";
  p.next_probe_at = now() + probe_in;
}

void MemoryStore::store_platform_certificates(const std::string& tenant_id,
                                              const std::vector<TenantRow::StoredCertificate>& certificates) {
  count_call(__func__);
  statements_ += certificates.size() + 1;
  TenantRow* row = tenant(tenant_id);
  if (!row) return;  // deleted meanwhile: the foreign key's cascade took its certificates
  for (const auto& cert : certificates) {
    auto it = std::find_if(row->platform_certificates.begin(), row->platform_certificates.end(),
                           [&](const auto& c) { return c.serial == cert.serial; });
    if (it == row->platform_certificates.end())
      row->platform_certificates.push_back(cert);
    else
      it->fetched_at = cert.fetched_at;
  }
  std::sort(row->platform_certificates.begin(), row->platform_certificates.end(),
            [](const auto& a, const auto& b) { return a.serial < b.serial; });
}

void MemoryStore::platform_certificate_used(const std::string& tenant_id, const std::string& serial) {
  count_call(__func__);
  ++statements_;
  first_used_.insert({tenant_id, serial});
}

void MemoryStore::resume_tenant(const std::string& tenant_id) {
  count_call(__func__);
  ++statements_;
  pauses_.erase(tenant_id);
}

std::vector<reconcile::ClaimResult> MemoryStore::claim_due(const std::vector<reconcile::ClaimRequest>& requests,
                                                           milliseconds lease) {
  count_call(__func__);
  ++statements_;  // one statement for every tenant asked for (pg/sql/claim_due.sql)
  std::vector<reconcile::ClaimResult> results;
  for (const auto& r : requests) results.push_back(claim_one(r.tenant_id, r.limit, lease));
  return results;
}

reconcile::ClaimResult MemoryStore::claim_one(const std::string& tenant_id, int limit, milliseconds lease) {
  CALLBACKD_ASSERT(limit >= 0);
  CALLBACKD_ASSERT(lease.count() > 0);
  const Instant t = now();
  const auto held = leases_.find(tenant_id);
  const bool tenant_lease_ours = held != leases_.end() && held->second.instance_id == instance_;
  // `later` reads the table before this claim (one snapshot), so it never counts this claim's
  // own entries.
  std::optional<Instant> later;
  auto earliest = [&](Instant x) {
    if (!later || x < *later) later = x;
  };
  std::vector<std::pair<Instant, std::string>> due;
  for (const auto& [mchid, w] : queue_) {
    if (w.tenant_id != tenant_id) continue;
    if (w.due_at > t) earliest(w.due_at);
    if (w.claim_token != 0 && w.lease_until >= t) earliest(w.lease_until);
    const bool claimable = w.claim_token == 0 || w.lease_until < t || (w.claimed_by != instance_ && tenant_lease_ours);
    if (w.due_at <= t && claimable) due.emplace_back(w.due_at, mchid);
  }
  std::sort(due.begin(), due.end());  // ORDER BY due_at (ties: by mchid here, arbitrary in SQL)
  if (static_cast<int>(due.size()) > limit) due.resize(static_cast<std::size_t>(limit));

  reconcile::ClaimResult result;
  result.tenant_id = tenant_id;
  if (const auto policy = live_policy_.find(tenant_id); policy != live_policy_.end())
    result.adopt_existing = policy->second.first;
  for (const auto& [due_at, mchid] : due) {
    QueueEntry& w = queue_.at(mchid);
    const Desired& d = desired_.at(mchid);
    if (d.revision < w.revision) continue;  // left for the next claim, as the SQL does
    w.claimed_by = instance_;
    w.claim_token = ++claim_token_seq_;
    w.lease_until = t + lease;
    claim_history_[mchid].emplace_back(t, w.lease_until);
    reconcile::WorkItem item;
    item.sub_mchid = mchid;
    item.tenant_id = w.tenant_id;
    item.claim_token = w.claim_token;
    item.resync = w.resync;
    item.notify_url = d.notify_url;
    item.desired.notify_url = d.notify_url.value_or(std::string());
    item.desired.push_switch = d.push_switch;
    item.desired.revision = d.revision;
    if (auto s = states_.find(mchid); s != states_.end()) {
      item.recorded = s->second.recorded;
      // Attempts count failures of one revision; a state about an older one starts afresh.
      if (s->second.recorded.revision == d.revision) item.attempts = s->second.attempts;
    }
    result.items.push_back(std::move(item));
  }
  if (later) result.next_due_in = ceil_ms(*later - t);
  return result;
}

void MemoryStore::release(const std::vector<std::int64_t>& claim_tokens) {
  count_call(__func__);
  if (claim_tokens.empty()) return;
  ++statements_;
  for (auto& [mchid, w] : queue_)
    if (w.claim_token != 0 &&
        std::find(claim_tokens.begin(), claim_tokens.end(), w.claim_token) != claim_tokens.end()) {
      w.claimed_by.reset();
      w.claim_token = 0;
      w.lease_until = {};
    }
}

void MemoryStore::drop(const std::vector<reconcile::WorkItem>& items) {
  count_call(__func__);
  if (items.empty()) return;
  ++statements_;
  for (const auto& item : items) {
    auto it = queue_.find(item.sub_mchid);
    if (it != queue_.end() && it->second.claim_token == item.claim_token &&
        it->second.revision == item.desired.revision)
      queue_.erase(it);
  }
}

void MemoryStore::record(const std::vector<reconcile::AttemptRecord>& records,
                         const std::vector<reconcile::TenantEvent>& events) {
  count_call(__func__);
  if (records.empty() && events.empty()) return;
  ++statements_;
  const Instant t = now();
  // Nothing below can fail half-way (no allocation failure is survivable anyway), so the batch
  // is written whole, as the one SQL statement is.
  for (const auto& rec : records) {
    // ON CONFLICT (claim_token) DO NOTHING: a repeated batch audits nothing twice.
    if (rec.claim_token == 0 || audited_tokens_.insert(rec.claim_token).second)
      audit_.push_back({t, rec.tenant_id, rec.sub_mchid, rec.outcome, rec.error_code, rec.claim_token});
  }
  for (const auto& e : events) audit_.push_back({t, e.tenant_id, std::nullopt, e.outcome, e.error_code, 0});
  // The last record of a sub-merchant decides its state and queue entry.
  std::map<std::string, const reconcile::AttemptRecord*> last;
  for (const auto& rec : records) last[rec.sub_mchid] = &rec;
  for (const auto& [mchid, rec] : last) {
    auto w = queue_.find(mchid);
    // Fencing: only while the entry still carries the attempt's claim token.
    if (rec->claim_token == 0 || w == queue_.end() || w->second.claim_token != rec->claim_token) continue;
    const auto& decision = rec->decision;
    if (decision.state != reconcile::RowState::pending) {
      auto [s, inserted] = states_.try_emplace(mchid);
      if (inserted || s->second.recorded.revision <= rec->revision) {  // never over a newer revision's state
        State& st = s->second;
        st.tenant_id = rec->tenant_id;
        st.recorded.state = decision.state;
        st.recorded.revision = rec->revision;
        st.read_token = 0;
        st.next_read_at.reset();
        if (rec->live_notify_url) st.live_notify_url = rec->live_notify_url;
        if (decision.state == reconcile::RowState::in_sync) {
          st.recorded.applied_notify_url = rec->notify_url;
          st.recorded.applied_switch = rec->push_switch;
          st.recorded.applied_revision = rec->revision;
          st.last_error_code.reset();
          st.next_read_at = t + std::chrono::ceil<milliseconds>(rec->next_read_in.value_or(Duration::zero()));
        } else {
          st.last_error_code = rec->error_code.empty() ? std::nullopt : std::optional<std::string>(rec->error_code);
        }
        st.attempts = decision.attempts;
      }
    }
    if (decision.remove_from_queue && w->second.revision == rec->revision) {
      queue_.erase(w);
    } else {
      w->second.due_at = t + std::chrono::ceil<milliseconds>(std::max(Duration::zero(), decision.delay));
      w->second.claimed_by.reset();
      w->second.claim_token = 0;
      w->second.lease_until = {};
    }
  }
}

void MemoryStore::set_live_policy(const std::string& tenant_id, bool adopt_existing, std::string drift_policy) {
  live_policy_[tenant_id] = {adopt_existing, std::move(drift_policy)};
}

std::vector<reconcile::DriftCheck> MemoryStore::claim_drift_checks(const std::vector<reconcile::ClaimRequest>& requests,
                                                                   milliseconds lease) {
  count_call(__func__);
  ++statements_;  // pg/sql/claim_drift_checks.sql
  const Instant t = now();
  std::vector<reconcile::DriftCheck> checks;
  for (const auto& r : requests) {
    // In next_read_at order, as the index serves them.
    std::vector<std::pair<Instant, std::string>> due;
    for (const auto& [mchid, st] : states_)
      if (st.tenant_id == r.tenant_id && st.recorded.state == reconcile::RowState::in_sync && st.next_read_at &&
          *st.next_read_at <= t && !queue_.count(mchid))
        due.emplace_back(*st.next_read_at, mchid);
    std::sort(due.begin(), due.end());
    if (due.size() > static_cast<std::size_t>(r.limit)) due.resize(static_cast<std::size_t>(r.limit));
    for (const auto& [at, mchid] : due) {
      State& st = states_[mchid];
      st.read_token = ++claim_token_seq_;
      st.next_read_at = t + lease;
      checks.push_back({mchid, st.tenant_id, st.read_token, st.recorded.applied_notify_url, st.recorded.revision});
    }
  }
  return checks;
}

void MemoryStore::record_drift_checks(const std::vector<reconcile::DriftCheckRecord>& records) {
  count_call(__func__);
  if (records.empty()) return;
  ++statements_;  // pg/sql/record_drift_checks.sql
  const Instant t = now();
  for (const auto& rec : records) {
    auto s = states_.find(rec.check.sub_mchid);
    // Fencing: the check's read token, still in sync at the compared value, no queued change.
    if (s == states_.end() || s->second.read_token != rec.check.read_token ||
        s->second.recorded.state != reconcile::RowState::in_sync ||
        s->second.recorded.applied_notify_url != rec.check.applied_notify_url || queue_.count(rec.check.sub_mchid))
      continue;
    State& st = s->second;
    st.read_token = 0;
    st.next_read_at = t + std::chrono::ceil<milliseconds>(rec.next_read_in);
    if (rec.live_notify_url) st.live_notify_url = rec.live_notify_url;
    if (!rec.drifted) continue;
    st.recorded.state = reconcile::RowState::drifted;
    st.last_error_code = "DRIFT_DETECTED";
    audit_.push_back({t, st.tenant_id, rec.check.sub_mchid, "drift_detected", "", 0, rec.live_notify_url});
    const auto policy = live_policy_.find(st.tenant_id);
    const auto d = desired_.find(rec.check.sub_mchid);
    if ((policy == live_policy_.end() || policy->second.second == "repair") && d != desired_.end())
      queue_[rec.check.sub_mchid] = QueueEntry{d->second.tenant_id, d->second.revision, t, true, std::nullopt, 0, {}};
  }
}

std::size_t MemoryStore::queue_resync() {
  count_call(__func__);
  ++statements_;
  std::size_t queued = 0;
  for (const auto& [mchid, d] : desired_) {
    auto tenant =
        std::find_if(tenants_.begin(), tenants_.end(), [&](const TenantRow& t) { return t.tenant_id == d.tenant_id; });
    if (tenant == tenants_.end() || tenant->mode != TenantMode::apply || pauses_.count(d.tenant_id)) continue;
    if (auto s = states_.find(mchid); s != states_.end() &&
                                      (s->second.recorded.state == reconcile::RowState::failed ||
                                       s->second.recorded.state == reconcile::RowState::invalid) &&
                                      s->second.recorded.revision >= d.revision)
      continue;
    if (queue_.count(mchid)) continue;  // ON CONFLICT DO NOTHING
    queue_[mchid] = QueueEntry{d.tenant_id, d.revision, now(), true, std::nullopt, 0, {}};
    ++queued;
  }
  return queued;
}

reconcile::Ownership MemoryStore::heartbeat(milliseconds lease, const std::vector<reconcile::ShareKey>& release,
                                            std::optional<milliseconds> /*dead_owner_margin: one instance*/,
                                            std::optional<int> /*expected_shares: every share is listed here*/) {
  count_call(__func__);
  const Instant t = now();
  if (heartbeats_fail_from_ && t >= *heartbeats_fail_from_) {
    ++statements_;
    throw DatabaseError(
        "heartbeat (callbackd.tenant_leases) failed on the in-memory store: canceling statement "
        "due to lock timeout (a test's fault)");
  }
  ++statements_;  // one statement: release, renew, count, acquire (pg/sql/heartbeat.sql)
  reconcile::Ownership o;
  if (fence_at_ && t >= *fence_at_) {
    ++epoch_;
    fenced_heartbeat_ = t;
    fence_at_.reset();
  }
  o.epoch = epoch_;
  // A tenant given up is not taken back by the same heartbeat (one snapshot in PostgreSQL).
  std::set<std::string> released;
  for (const auto& [id, share] : release)
    if (auto it = leases_.find(id); it != leases_.end() && it->second.instance_id == instance_) {
      leases_.erase(it);
      released.insert(id);
    }
  // One instance: a tenant's lease here covers every share of its rate (migrations/0013).
  auto every_share = [&](const std::string& id, std::int64_t token, bool acquired) {
    const TenantRow* row = tenant(id);
    const int rate = row ? row->rate_per_minute : 1;
    for (int share = 0; share < reconcile::rate_shares(rate); ++share) {
      reconcile::OwnedTenant held;
      held.tenant_id = id;
      held.fencing_token = token;
      held.acquired_now = acquired;
      held.share = share;
      held.rate_per_minute = reconcile::share_rate(rate, share);
      o.owned.push_back(std::move(held));
    }
  };
  int held = 0;
  for (auto& [id, l] : leases_)
    if (l.instance_id == instance_) {
      l.lease_until = t + lease;
      lease_history_[id].emplace_back(t, l.lease_until);
      every_share(id, l.fencing_token, false);
      ++held;
    }
  o.live_instances = 1;
  // Every share of every tenant: nothing is ever handed over here.
  o.fair_share = 0;
  for (const auto& row : tenants_) o.fair_share += reconcile::rate_shares(row.rate_per_minute);
  int wanted = static_cast<int>(tenants_.size()) - held;
  if (wanted > 0) {
    std::vector<std::string> ids;
    for (const auto& row : tenants_) ids.push_back(row.tenant_id);
    std::sort(ids.begin(), ids.end());
    for (const auto& id : ids) {
      if (wanted == 0) break;
      auto it = leases_.find(id);
      if (it != leases_.end() && it->second.lease_until >= t) continue;  // held (by us: renewed above)
      if (released.count(id)) continue;
      leases_[id] = TenantLease{instance_, t + lease, ++lease_seq_};
      lease_history_[id].emplace_back(t, t + lease);
      every_share(id, lease_seq_, true);
      --wanted;
    }
  }
  return o;
}

void MemoryStore::release_all_tenants() {
  count_call(__func__);
  ++statements_;
  for (auto it = leases_.begin(); it != leases_.end();)
    it = it->second.instance_id == instance_ ? leases_.erase(it) : std::next(it);
}

std::vector<std::string> MemoryStore::due_tenants() {
  count_call(__func__);
  ++statements_;
  const Instant t = now();
  std::set<std::string> due;
  for (const auto& [mchid, w] : queue_)
    if (w.due_at <= t && (w.claim_token == 0 || w.lease_until < t || w.claimed_by != instance_))
      due.insert(w.tenant_id);
  return {due.begin(), due.end()};
}

std::size_t MemoryStore::pending_for_sending_tenants() {
  count_call(__func__);
  ++statements_;
  std::size_t n = 0;
  for (const auto& [mchid, w] : queue_) {
    auto tenant =
        std::find_if(tenants_.begin(), tenants_.end(), [&](const TenantRow& t) { return t.tenant_id == w.tenant_id; });
    if (tenant != tenants_.end() && tenant->mode == TenantMode::apply && !pauses_.count(w.tenant_id)) ++n;
  }
  return n;
}

std::vector<reconcile::TenantQueue> MemoryStore::queue_ages() {
  count_call(__func__);
  ++statements_;
  std::map<std::string, reconcile::TenantQueue> by_tenant;
  for (const auto& [mchid, w] : queue_) {
    auto& q = by_tenant[w.tenant_id];
    q.tenant_id = w.tenant_id;
    ++q.queued;
  }
  std::vector<reconcile::TenantQueue> out;
  for (auto& [id, q] : by_tenant) out.push_back(std::move(q));  // oldest change: not tracked here
  return out;
}

std::vector<reconcile::LearnedRate> MemoryStore::learned_rates() {
  count_call(__func__);
  ++statements_;
  std::vector<reconcile::LearnedRate> out;
  for (const auto& [key, rate] : learned_) out.push_back({key.first, key.second, rate, learned_ages_[key]});
  return out;
}

void MemoryStore::save_learned_rates(const std::vector<reconcile::LearnedRate>& changes) {
  count_call(__func__);
  ++statements_;
  for (const auto& change : changes) {
    const reconcile::LearnedKey key{change.scope, change.key};
    learned_.erase(key);
    learned_ages_.erase(key);
    if (change.rate_per_minute) put_learned_rate({change.scope, change.key, change.rate_per_minute, {}});
  }
}

void MemoryStore::put_learned_rate(const reconcile::LearnedRate& rate) {
  const reconcile::LearnedKey key{rate.scope, rate.key};
  learned_[key] = rate.rate_per_minute.value_or(0);
  learned_ages_[key] = rate.age;
}

status::DatabaseView MemoryStore::read_status(const status::Query&) {
  count_call(__func__);
  throw DatabaseError("the in-memory store does not answer the status page's queries (tests/e2e covers the page)");
}

std::size_t MemoryStore::in_sync(const std::string& tenant_id) const {
  std::size_t n = 0;
  for (const auto& [mchid, s] : states_) {
    if (!tenant_id.empty() && s.tenant_id != tenant_id) continue;
    const auto d = desired_.find(mchid);
    if (s.recorded.state == reconcile::RowState::in_sync && d != desired_.end() &&
        s.recorded.applied_revision == d->second.revision)
      ++n;
  }
  return n;
}

}  // namespace callbackd::engine_test
