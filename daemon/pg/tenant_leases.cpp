// The tenants' side of the store: reading tenants and their pauses, pausing and resuming, and
// the tenant leases of several instances (heartbeat, ownership, takeover of a dead instance;
// migrations/0003_tenant_leases.sql, 0005_instance_liveness.sql,
// 0007_instance_leases.sql).
#include <algorithm>
#include <iterator>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/reconcile/ownership_policy.h"
#include "pg/queue_rows.h"
#include "pg/store_session.h"
#include "pg/tenants_query.h"

namespace callbackd::pg {

std::vector<TenantRow> ReconcileStore::tenants() {
  return impl_->run("reading callbackd.tenants", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    impl_->statements += 3;  // tenants, extra keys, platform certificates
    return read_tenants(tx);
  });
}

std::map<std::string, reconcile::StoredTenantPause> ReconcileStore::tenant_pauses() {
  return impl_->run("reading callbackd.tenant_state",
                    [&](pqxx::connection& c) { return stored_pauses_from(impl_->exec1(c, "tenant_pauses")); });
}

void ReconcileStore::pause_tenant(const std::string& tenant_id, const std::string& error_code,
                                  const std::string& reason, std::chrono::milliseconds probe_in) {
  impl_->run("pausing a tenant in callbackd.tenant_state", [&](pqxx::connection& c) {
    impl_->exec1(c, "pause_tenant", tenant_id, error_code, reason, millis(probe_in));
  });
}

void ReconcileStore::store_platform_certificates(const std::string& tenant_id,
                                                 const std::vector<TenantRow::StoredCertificate>& certificates) {
  impl_->run("storing platform certificates in callbackd.platform_certificates", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    for (const auto& cert : certificates) {
      ++impl_->statements;
      tx.exec_prepared("store_platform_certificate", tenant_id, cert.serial, unix_millis(cert.effective_at),
                       unix_millis(cert.expires_at), cert.pem);
    }
    ++impl_->statements;
    tx.exec_prepared("forget_expired_platform_certificates", tenant_id);
    tx.commit();
  });
}

void ReconcileStore::platform_certificate_used(const std::string& tenant_id, const std::string& serial) {
  impl_->run("recording a platform certificate's first use",
             [&](pqxx::connection& c) { impl_->exec1(c, "platform_certificate_first_used", tenant_id, serial); });
}

std::vector<reconcile::LearnedRate> ReconcileStore::learned_rates() {
  return impl_->run("reading callbackd.learned_rates", [&](pqxx::connection& c) {
    std::vector<reconcile::LearnedRate> out;
    for (const auto& r : impl_->exec1(c, "learned_rates")) {
      const auto scope = reconcile::learned_scope_from(r["scope"].as<std::string>());
      if (!scope) continue;  // the table's CHECK admits no other
      out.push_back({*scope, r["key"].as<std::string>(), r["rate_per_minute"].as<double>(),
                     std::chrono::milliseconds{std::max(0LL, r["age_ms"].as<long long>())}});
    }
    return out;
  });
}

void ReconcileStore::save_learned_rates(const std::vector<reconcile::LearnedRate>& changes) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& change : changes)
    rows.push_back({{"scope", reconcile::learned_scope_name(change.scope)},
                    {"key", change.key},
                    {"rate", change.rate_per_minute ? nlohmann::json(*change.rate_per_minute) : nlohmann::json()}});
  const std::string json = rows.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  impl_->run("writing callbackd.learned_rates",
             [&](pqxx::connection& c) { impl_->exec1(c, "save_learned_rates", json); });
}

void ReconcileStore::resume_tenant(const std::string& tenant_id) {
  impl_->run("resuming a tenant in callbackd.tenant_state",
             [&](pqxx::connection& c) { impl_->exec1(c, "resume_tenant", tenant_id); });
}

reconcile::Ownership ReconcileStore::heartbeat(std::chrono::milliseconds lease,
                                               const std::vector<reconcile::ShareKey>& release,
                                               std::optional<std::chrono::milliseconds> dead_owner_margin,
                                               std::optional<int> expected_shares) {
  const ProcessIdentity& self = impl_->self;
  const bool find_dead = dead_owner_margin && !self.boot_id.empty() && !self.pid_namespace.empty();
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& key : release) pairs.push_back({key.tenant_id, key.share});
  const std::string released = pairs.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return impl_->run("heartbeat (callbackd.tenant_leases)", [&](pqxx::connection& c) {
    // The steady state is this one statement (sql/heartbeat.sql says what it does and why it
    // is safe in one snapshot).
    const pqxx::result rows = impl_->exec1(c, "heartbeat", impl_->instance, self.boot_id, self.pid_namespace, self.pid,
                                           millis(lease), released, find_dead, expected_shares.value_or(-1));
    reconcile::Ownership o;
    std::vector<reconcile::OwnedTenant> acquired;
    std::vector<ProcessIdentity> peers;
    std::vector<std::string> peer_ids;
    int shares = 0;
    for (const auto& r : rows) {
      const std::string_view kind = r["kind"].c_str();
      if (kind == "counts") {
        o.live_instances = r["n"].as<int>();
        shares = r["m"].as<int>();
        o.shares_held = r["rate"].as<int>();
        o.listed = !expected_shares || *expected_shares != o.shares_held;
        o.epoch = r["epoch"].as<std::int64_t>();
      } else if (kind == "renewed") {
        // One row per tenant: the shares held as a bit mask, and the tenant's rate
        // (sql/heartbeat.sql). A share beyond the tenant's count has no rate.
        const auto mask = r["m"].as<unsigned>();
        const int rate = r["rate"].as<int>();
        for (int share = 0; share < 16; ++share) {
          if (!(mask & (1u << share))) continue;
          reconcile::OwnedTenant t;
          t.tenant_id = r["id"].as<std::string>();
          t.fencing_token = r["n"].as<std::int64_t>();
          t.share = share;
          t.rate_per_minute = reconcile::share_rate(rate, share);
          o.owned.push_back(std::move(t));
        }
      } else if (kind == "acquired") {
        reconcile::OwnedTenant t;
        t.tenant_id = r["id"].as<std::string>();
        t.fencing_token = r["n"].as<std::int64_t>();
        t.acquired_now = true;
        t.share = r["share"].as<int>();
        t.rate_per_minute = r["rate"].as<int>();
        if (!r["previous"].is_null()) t.previous = r["previous"].as<std::string>();
        if (!r["recent_sends"].is_null())
          for (const auto& send : nlohmann::json::parse(r["recent_sends"].c_str()))
            t.recent_sends.push_back(
                {send[0].get<std::int64_t>(), std::chrono::milliseconds{send[1].get<long long>()}});
        acquired.push_back(std::move(t));
      } else {
        CALLBACKD_ASSERT(kind == "peer");
        peer_ids.push_back(r["id"].as<std::string>());
        peers.push_back({self.boot_id, self.pid_namespace, r["n"].as<long>()});
      }
    }
    std::move(acquired.begin(), acquired.end(), std::back_inserter(o.owned));
    // Rare: an instance of this machine whose process is gone. A second statement, after the
    // counting and acquiring above (the old transaction did it before). It was counted live
    // there (the same condition, the same snapshot), so it is taken out of the counts reported
    // here; what this heartbeat acquired was sized with it still in, and the rest of the larger
    // share is acquired on the next heartbeat, 2 s later. Nothing is lost by that: its own
    // leases only lapse after the margin anyway, so no heartbeat could take them sooner.
    for (std::size_t i = 0; i < peers.size(); ++i) {
      if (!provably_dead(self, peers[i], impl_->probe(peers[i].pid))) continue;
      const auto held = impl_->exec1(c, "take_over_dead_instance", peer_ids[i], millis(*dead_owner_margin));
      o.dead_instances.push_back({peer_ids[i], peers[i].pid, held[0][0].as<int>()});
    }
    o.live_instances = std::max(1, o.live_instances - static_cast<int>(o.dead_instances.size()));
    o.fair_share = (shares + o.live_instances - 1) / o.live_instances;
    return o;
  });
}

void ReconcileStore::release_all_tenants() {
  impl_->run("releasing tenant leases",
             [&](pqxx::connection& c) { impl_->exec1(c, "release_all_tenants", impl_->instance); });
}

}  // namespace callbackd::pg
