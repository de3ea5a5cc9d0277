// Tenant ownership among several instances sharing one database
// (migrations/0003_tenant_leases.sql, 0007_instance_leases.sql): what one heartbeat found. Plain data; the store
// (engine/store.h) produces it, the lease keeper acts on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace callbackd::reconcile {

struct OwnedTenant {
  std::string tenant_id;
  std::int64_t fencing_token = 0;
  bool acquired_now = false;  // not held before this heartbeat
  // acquired_now only: how long ago (by the database clock) each attempt of the last 61 s
  // that reached WeChat Pay was recorded, so the new owner's pacer counts the previous
  // owner's requests in its 1 s and 60 s windows.
  std::vector<std::chrono::milliseconds> recent_sends;
};

// An instance found dead on this machine (migrations/0005): its leases now lapse after
// dead_owner_margin instead of the lease time.
struct DeadInstance {
  std::string instance_id;
  long pid = 0;
  int tenants = 0;  // leases it held
};

struct Ownership {
  std::vector<OwnedTenant> owned;  // every tenant this instance holds after the heartbeat
  int live_instances = 1;          // instances whose heartbeat is younger than the lease
  int fair_share = 0;              // ceil(tenants / live_instances)
  // This instance's epoch after the renewal (migrations/0007). Another instance changes it
  // before taking tenants of ours over (our lease had lapsed); a renewal that returns an epoch
  // other than the previous one may therefore have raced with a takeover, and `owned` is
  // trusted only from the next heartbeat on (engine/lease_keeper.cpp).
  std::int64_t epoch = 0;
  std::vector<DeadInstance> dead_instances;
};

}  // namespace callbackd::reconcile
