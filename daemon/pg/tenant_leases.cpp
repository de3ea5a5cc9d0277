// The tenants' side of the store: reading tenants and their pauses, pausing and resuming, and
// the tenant leases of several instances (heartbeat, ownership, takeover of a dead instance;
// migrations/0003_tenant_leases.sql, 0005_instance_liveness.sql).
#include "pg/queue_rows.h"
#include "pg/store_session.h"
#include "pg/tenants_query.h"

namespace callbackd::pg {

std::vector<TenantRow> ReconcileStore::tenants() {
  return impl_->run("reading callbackd.tenants", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    impl_->statements += 2;
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

void ReconcileStore::resume_tenant(const std::string& tenant_id) {
  impl_->run("resuming a tenant in callbackd.tenant_state",
             [&](pqxx::connection& c) { impl_->exec1(c, "resume_tenant", tenant_id); });
}

reconcile::Ownership ReconcileStore::heartbeat(std::chrono::milliseconds lease, const std::vector<std::string>& release,
                                               std::optional<std::chrono::milliseconds> dead_owner_margin) {
  return impl_->run("heartbeat (callbackd.tenant_leases)", [&](pqxx::connection& c) {
    reconcile::Ownership o;
    pqxx::work tx(c);
    impl_->statements += 4;
    const ProcessIdentity& self = impl_->self;
    tx.exec_prepared0("heartbeat_instance", impl_->instance, self.boot_id, self.pid_namespace, self.pid);
    if (dead_owner_margin && !self.boot_id.empty() && !self.pid_namespace.empty()) {
      // Before counting live instances and acquiring: a dead one neither counts nor holds.
      ++impl_->statements;
      for (const auto& r : tx.exec_prepared("same_machine_instances", impl_->instance, self.boot_id, self.pid_namespace,
                                            millis(lease))) {
        const ProcessIdentity other{self.boot_id, self.pid_namespace, r[1].as<long>()};
        if (!provably_dead(self, other, impl_->probe(other.pid))) continue;
        ++impl_->statements;
        const auto held =
            tx.exec_prepared1("take_over_dead_instance", r[0].as<std::string>(), millis(*dead_owner_margin));
        o.dead_instances.push_back({r[0].as<std::string>(), other.pid, held[0].as<int>()});
      }
    }
    for (const auto& tenant_id : release) {
      ++impl_->statements;
      tx.exec_prepared0("release_tenant", impl_->instance, tenant_id);
    }
    for (const auto& r : tx.exec_prepared("renew_tenants", impl_->instance, millis(lease)))
      o.owned.push_back({r[0].as<std::string>(), r[1].as<std::int64_t>(), false, {}});
    const auto counts = tx.exec_prepared1("live_instances", millis(lease));
    o.live_instances = std::max(1, counts[0].as<int>());
    const int tenants = counts[1].as<int>();
    o.fair_share = (tenants + o.live_instances - 1) / o.live_instances;
    const int wanted = o.fair_share - static_cast<int>(o.owned.size());
    if (wanted > 0) {
      ++impl_->statements;
      for (const auto& r : tx.exec_prepared("acquire_tenants", impl_->instance, millis(lease), wanted)) {
        reconcile::OwnedTenant t{r[0].as<std::string>(), r[1].as<std::int64_t>(), true, {}};
        ++impl_->statements;
        for (const auto& age : tx.exec_prepared("recent_sends", t.tenant_id))
          t.recent_sends.emplace_back(age[0].as<long long>());
        o.owned.push_back(std::move(t));
      }
    }
    tx.exec_prepared0("forget_instances");
    tx.commit();
    return o;
  });
}

void ReconcileStore::release_all_tenants() {
  impl_->run("releasing tenant leases",
             [&](pqxx::connection& c) { impl_->exec1(c, "release_all_tenants", impl_->instance); });
}

}  // namespace callbackd::pg
