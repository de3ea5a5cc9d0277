#include "engine/lease_keeper.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "core/logging/event.h"
#include "core/reconcile/claim_policy.h"
#include "core/reconcile/ownership_policy.h"
#include "engine/tenant_registry.h"

namespace callbackd::engine {

using logging::log_id;
using reconcile::Instant;
using std::chrono::milliseconds;

namespace {

// Leases are renewed every heartbeat; an instance stops sending long enough before its lease
// could lapse that even its last request has reached WeChat Pay (or given up) before another
// instance may take over: reconcile::lease_timing, from every phase of a request.
constexpr milliseconds kHeartbeatInterval{2'000};

}  // namespace

LeaseKeeper::LeaseKeeper(boost::asio::io_context& io, Clock& clock, DbWorker& db, std::weak_ptr<const void> lifetime,
                         const Config& config, TenantRegistry& tenants, reconcile::FairScheduler& scheduler,
                         std::function<void()> wake)
    : io_(io),
      clock_(clock),
      db_(db),
      lifetime_(std::move(lifetime)),
      config_(config),
      tenants_(tenants),
      scheduler_(scheduler),
      wake_(std::move(wake)) {}

reconcile::LeaseTiming LeaseKeeper::timing(Instant now) const {
  const auto timing = reconcile::lease_timing(config_.wechatpay);
  if (!timing_before_reload_) return timing;
  return reconcile::lease_timing_since_reload(*timing_before_reload_, reloaded_at_, timing, now);
}

milliseconds LeaseKeeper::claim_lease(Instant now) const {
  // The rows' lease (claim_policy.h): longer than the buffer and any request's deadline.
  return reconcile::claim_lease(config_.wechatpay.request_timeout, timing(now).lease);
}

void LeaseKeeper::before_reload(Instant now) {
  // Requests dispatched before the reload keep their old deadline (lease_timing_since_reload).
  timing_before_reload_ = timing(now);
  reloaded_at_ = now;
}

void LeaseKeeper::after_reload(Instant now) {
  // Longer deadlines from now on: a request dispatched at the old send_until could outlive the
  // lease granted before the reload, so each tenant stops dispatching that much earlier.
  const reconcile::Duration longer_by = reconcile::send_until_shift_after_reload(*timing_before_reload_, timing(now));
  if (longer_by > reconcile::Duration::zero()) {
    for (auto& [id, t] : tenants_.all()) t->send_until -= longer_by;
    if (send_until_) *send_until_ -= longer_by;
  }
}

void LeaseKeeper::on_turn(Instant now) {
  // The leases may lapse (heartbeats failed meanwhile): every owned tenant stops sending now.
  // Tenants the run loop is not looking at (attention.h) are told here, once.
  if (send_until_ && now >= *send_until_) {
    send_until_.reset();
    tenants_.sync_scheduler_all(now);
  }
  if (!tenants_.loaded() || heartbeat_out_ || now < next_heartbeat_) return;
  next_heartbeat_ = now + kHeartbeatInterval;
  heartbeat(now);
}

std::optional<Instant> LeaseKeeper::wake_at() const {
  std::optional<Instant> wake;
  if (!heartbeat_out_ && tenants_.loaded()) wake = next_heartbeat_;
  if (send_until_ && (!wake || *send_until_ < *wake)) wake = send_until_;
  return wake;
}

void LeaseKeeper::heartbeat(Instant now) {
  heartbeat_out_ = true;
  // Shares handed over: a tenant that keeps others gives them up at once (it stopped sending
  // at their rate when they were marked, a heartbeat ago); its last ones once its requests
  // in flight are done.
  std::vector<reconcile::ShareKey> release;
  int held = 0;
  for (const auto& [id, t] : tenants_.all()) {
    held += static_cast<int>(t->shares.size());
    if (!t->releasing || t->in_flight.empty())
      for (const int share : t->releasing_shares) release.push_back({id, share});
  }
  // What we hold after giving those up, as far as we know: when the database counts as much,
  // it lists only what this heartbeat acquires (engine/store.h). After a fence, or at the
  // first heartbeat, we know nothing for sure: everything is listed.
  std::optional<int> expected_shares;
  if (epoch_ && !list_next_) expected_shares = held - static_cast<int>(release.size());
  const auto lease_timing = timing(now);
  const auto lease = std::chrono::ceil<milliseconds>(lease_timing.lease);
  const auto margin = std::chrono::ceil<milliseconds>(lease_timing.send_margin);
  const auto dead_owner_margin = std::chrono::ceil<milliseconds>(lease_timing.dead_owner_margin);
  struct Renewed {
    reconcile::Ownership ownership;
    Instant lease_until;
  };
  db_.call_then(
      io_, lifetime_,
      [this, release, lease, dead_owner_margin, expected_shares](Store& store) {
        // Before the statement: the database's now() (the lease's start) is no earlier than this.
        const Instant started = clock_.now();
        // A dead instance on this machine (migrations/0005) starts nothing more: only what it
        // had already written may still reach WeChat Pay (LeaseTiming::dead_owner_margin).
        return Renewed{store.heartbeat(lease, release, dead_owner_margin, expected_shares), started + lease};
      },
      [this, release, margin, dead_owner_margin](Result<Renewed, DatabaseError> renewed) {
        heartbeat_out_ = false;
        if (!renewed) {
          logging::error("heartbeat_failed",
                         {{"error", renewed.error().what()}, {"note", "sending stops when the leases may lapse"}});
        } else {
          for (const auto& d : renewed->ownership.dead_instances)
            logging::info("instance_dead", {{"instance", d.instance_id},
                                            {"pid", d.pid},
                                            {"tenants", d.tenants},
                                            {"takeover_in_ms", dead_owner_margin.count()}});
          // A SIGHUP between the statement and now may have lengthened the client's deadlines:
          // the margin is the larger of the one the lease was asked with and today's.
          const auto margin_now = std::chrono::ceil<milliseconds>(timing(clock_.now()).send_margin);
          Instant send_until = reconcile::send_until(renewed->lease_until, margin, margin_now);
          // Fenced by a takeover while our lease had lapsed: what this answer lists may predate
          // it, so nothing is sent until the next heartbeat says what we still hold.
          const auto& owned = renewed->ownership.owned;
          const bool holds_earlier_leases =
              renewed->ownership.listed
                  ? std::any_of(owned.begin(), owned.end(), [](const auto& o) { return !o.acquired_now; })
                  : renewed->ownership.shares_held > 0;
          list_next_ = false;
          if (!reconcile::renewal_confirms_holding(epoch_, renewed->ownership.epoch, holds_earlier_leases)) {
            logging::warn("lease_fenced", {{"note",
                                            "another instance took tenants over while our lease had lapsed; sending "
                                            "resumes once the next heartbeat confirms what we hold"}});
            send_until = clock_.now();
            list_next_ = true;
          }
          epoch_ = renewed->ownership.epoch;
          on_heartbeat(renewed->ownership, release, send_until);
        }
        wake_();
      });
}

void LeaseKeeper::on_heartbeat(const reconcile::Ownership& ownership, const std::vector<reconcile::ShareKey>& released,
                               Instant send_until) {
  const Instant now = clock_.now();
  for (const auto& [id, share] : released)
    if (TenantRuntime* t = tenants_.find(id)) {
      t->releasing_shares.erase(share);
      t->shares.erase(share);
      if (t->shares.empty() && t->owned) {
        t->releasing = false;
        t->owned = false;
        logging::info("tenant_released", {{"tenant", log_id(id)}});
      }
    }
  if (!ownership.listed && ownership.owned.empty() && renew_quietly(ownership.fair_share, send_until, now)) return;

  // Every share held now: as listed, or (not listed: the database counted what we expected)
  // the ones we held, which are still ours, and the ones acquired now.
  std::vector<reconcile::OwnedTenant> listed;
  const std::vector<reconcile::OwnedTenant>* owned = &ownership.owned;
  if (!ownership.listed) {
    for (const auto& [id, t] : tenants_.all())
      for (const int share : t->shares) {
        reconcile::OwnedTenant o;
        o.tenant_id = id;
        o.share = share;
        listed.push_back(std::move(o));
      }
    listed.insert(listed.end(), ownership.owned.begin(), ownership.owned.end());
    owned = &listed;
  }

  // What the heartbeat says, by tenant: the shares held now.
  std::map<std::string, std::set<int>> held_shares;
  // The requests other instances sent for a tenant within the last minute, to count in our
  // windows (ownership_policy.h), each once.
  std::map<std::string, std::vector<milliseconds>> sent_by_others;
  std::map<std::string, std::vector<const reconcile::OwnedTenant*>> acquired;
  bool unknown_tenant = false;
  std::vector<reconcile::HeldShare> held;
  for (const auto& o : *owned) {
    TenantRuntime* t = tenants_.find(o.tenant_id);
    if (!t) {
      unknown_tenant = true;  // created after our last read of callbackd.tenants
      continue;
    }
    held_shares[o.tenant_id].insert(o.share);
    if (o.acquired_now || !t->shares.count(o.share)) {
      acquired[o.tenant_id].push_back(&o);
      // Each request once: the same one comes with every share acquired from the same
      // instance, in this heartbeat or a later one.
      for (const auto& send : o.recent_sends)
        if (t->counted_sends.emplace(send.audit_id, now - send.age).second)
          sent_by_others[o.tenant_id].push_back(send.age);
    }
    held.push_back({o.tenant_id, o.share, t->releasing_shares.count(o.share) > 0});
  }
  // One line per tenant, however many of its shares came at once.
  for (const auto& [id, shares] : acquired) {
    int rate = 0;
    std::string numbers;
    for (const reconcile::OwnedTenant* o : shares) {
      rate += reconcile::share_rate(tenants_.find(id)->row.rate_per_minute, o->share);
      numbers += (numbers.empty() ? "" : ",") + std::to_string(o->share);
    }
    logging::info("tenant_acquired", {{"tenant", log_id(id)},
                                      {"shares", numbers},
                                      {"rate_per_minute", rate},
                                      {"fencing_token", shares.front()->fencing_token},
                                      {"live_instances", ownership.live_instances}});
  }
  std::vector<std::string> newly_owned;
  for (auto& [id, t] : tenants_.all()) {
    const auto it = held_shares.find(id);
    if (it == held_shares.end()) {
      if (t->owned) logging::warn("tenant_lost", {{"tenant", log_id(id)}, {"note", "another instance holds it now"}});
      t->owned = false;
      t->releasing = false;
      t->shares.clear();
      t->releasing_shares.clear();
      continue;
    }
    t->send_until = send_until;
    if (!t->owned) newly_owned.push_back(id);
    t->owned = true;
    t->shares = std::move(it->second);
    std::erase_if(t->releasing_shares, [&](int share) { return !t->shares.count(share); });
    give_up_beyond_count(*t);
  }
  // Kept first: share 0 of every tenant, then share 1, ... (as the heartbeat acquires them), so
  // that what is handed over is the highest shares and every instance keeps a part of each tenant.
  for (auto& h : held) h.releasing = tenants_.find(h.tenant_id)->releasing_shares.count(h.share) > 0;
  std::stable_sort(held.begin(), held.end(), [](const auto& a, const auto& b) {
    return std::tie(a.share, a.tenant_id) < std::tie(b.share, b.tenant_id);
  });
  hand_over(reconcile::shares_to_hand_over(held, ownership.fair_share), ownership.fair_share);
  for (const auto& id : newly_owned) {
    TenantRuntime* t = tenants_.find(id);
    tenants_.wake_up(*t);
    // The pause state is the database's (another owner may have paused or resumed it).
    tenants_.refresh();
    if (!t->credentials_problem.empty()) tenants_.pause(id, "CREDENTIALS_INVALID", t->credentials_problem, true);
  }
  if (unknown_tenant) tenants_.refresh();
  send_until_ = held_shares.empty() ? std::nullopt : std::optional<Instant>(send_until);
  // The pacers at their new rates first: what they are told below is kept up to that rate.
  tenants_.sync_scheduler_all(now);
  for (const auto& [id, recent] : sent_by_others) {
    TenantRuntime* t = tenants_.find(id);
    auto sends = reconcile::assumed_sends_after_takeover(recent, t->row.max_in_flight, now);
    if (!sends.empty()) scheduler_.assume_sent(id, std::move(sends));
    // Those out of every window need not be remembered.
    std::erase_if(t->counted_sends,
                  [&](const auto& counted) { return counted.second < now - std::chrono::seconds{61}; });
  }
}

bool LeaseKeeper::renew_quietly(int fair_share, Instant send_until, Instant now) {
  // The steady state: nothing acquired, nothing lost (the database counted what we hold),
  // nothing given up. Only the leases' new end, unless the fair share asks for a hand-over.
  int kept = 0;
  for (const auto& [id, t] : tenants_.all()) kept += static_cast<int>(t->shares.size() - t->releasing_shares.size());
  if (kept > fair_share) return false;
  bool any = false;
  for (auto& [id, t] : tenants_.all()) {
    if (t->shares.empty()) continue;
    any = true;
    t->send_until = send_until;
    give_up_beyond_count(*t);
  }
  send_until_ = any ? std::optional<Instant>(send_until) : std::nullopt;
  tenants_.sync_scheduler_all(now);
  return true;
}

void LeaseKeeper::give_up_beyond_count(TenantRuntime& t) {
  // Shares beyond the tenant's count (its rate was lowered) have no rate: given up at the next
  // heartbeat.
  for (const int share : t.shares)
    if (reconcile::share_rate(t.row.rate_per_minute, share) == 0) t.releasing_shares.insert(share);
  t.releasing = !t.shares.empty() && t.releasing_shares.size() == t.shares.size();
}

void LeaseKeeper::hand_over(const std::vector<reconcile::ShareKey>& shares, int fair_share) {
  // More than our share while others have room: stop sending at those shares' rates now and
  // give them up at the next heartbeat (a tenant's last ones once its requests are done).
  std::map<std::string, std::string> by_tenant;  // tenant -> the shares handed over now, for the log
  for (const auto& [id, share] : shares) {
    TenantRuntime* t = tenants_.find(id);
    t->releasing_shares.insert(share);
    t->releasing = t->releasing_shares.size() == t->shares.size();
    std::string& numbers = by_tenant[id];
    numbers += (numbers.empty() ? "" : ",") + std::to_string(share);
  }
  for (const auto& [id, numbers] : by_tenant)
    logging::info("tenant_releasing", {{"tenant", log_id(id)},
                                       {"shares", numbers},
                                       {"all", tenants_.find(id)->releasing},
                                       {"fair_share", fair_share}});
}

}  // namespace callbackd::engine
