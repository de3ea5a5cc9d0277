// Tenant ownership among several instances sharing one database
// (migrations/0003_tenant_leases.sql, 0007_instance_leases.sql): what one heartbeat found. Plain data; the store
// (engine/store.h) produces it, the lease keeper acts on it.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace callbackd::reconcile {

// A lease on one share of a tenant's rate (migrations/0013_rate_shares.sql): several
// instances may hold shares of one tenant; each sends it at the sum of its shares' rates.
struct OwnedTenant {
  std::string tenant_id;
  std::int64_t fencing_token = 0;
  bool acquired_now = false;  // not held before this heartbeat
  int share = 0;              // which share of the tenant's rate
  int rate_per_minute = 0;    // what the share may send a minute (callbackd.share_rate)
  // acquired_now only: how long ago (by the database clock) each attempt of the last 61 s
  // that reached WeChat Pay was recorded, so the new holder's pacer counts them in its 1 s and
  // 60 s windows: those of the instance the share was taken from (`previous`), or for a free
  // share those of every other instance.
  std::optional<std::string> previous;
  struct RecentSend {
    std::int64_t audit_id = 0;  // callbackd.audit_log.id: the same request seen again is counted once
    std::chrono::milliseconds age{0};
  };
  std::vector<RecentSend> recent_sends;
};

// A share this instance gives up (the heartbeat deletes its lease).
struct ShareKey {
  std::string tenant_id;
  int share = 0;
  auto operator<=>(const ShareKey&) const = default;
};

// An instance found dead on this machine (migrations/0005): its leases now lapse after
// dead_owner_margin instead of the lease time.
struct DeadInstance {
  std::string instance_id;
  long pid = 0;
  int tenants = 0;  // tenants it held shares of
};

struct Ownership {
  // Every share this instance holds after the heartbeat, or, when `listed` is false, only the
  // ones acquired now: the database counted the others as the caller expected
  // (engine/store.h), so they are the ones it held before less those it gave up.
  std::vector<OwnedTenant> owned;
  bool listed = true;
  int shares_held = 0;     // held before acquiring, after giving up
  int live_instances = 1;  // instances whose heartbeat is younger than the lease
  int fair_share = 0;      // ceil(shares of all tenants / live_instances)
  // This instance's epoch after the renewal (migrations/0007). Another instance changes it
  // before taking tenants of ours over (our lease had lapsed); a renewal that returns an epoch
  // other than the previous one may therefore have raced with a takeover, and `owned` is
  // trusted only from the next heartbeat on (engine/lease_keeper.cpp).
  std::int64_t epoch = 0;
  std::vector<DeadInstance> dead_instances;
};

}  // namespace callbackd::reconcile
