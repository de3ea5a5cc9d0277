// Tenant ownership among several instances on one database (migrations/0003, 0007): the
// heartbeat that renews this instance's lease (which covers its tenants), takes free tenants up
// to its fair share and hands the rest over; and the lease timing that says until when this
// instance may dispatch for a tenant (reconcile::lease_timing, with the reload rule: requests
// dispatched before a SIGHUP keep their old deadline). Runs on the io_context; the heartbeat
// goes through the DbWorker.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/reconcile/lease_timing.h"
#include "core/reconcile/ownership.h"
#include "core/reconcile/scheduler.h"
#include "engine/clock.h"
#include "engine/db_worker.h"

namespace callbackd::engine {

class TenantRegistry;
struct TenantRuntime;

class LeaseKeeper {
 public:
  // `config` is the reconciler's (wechatpay timeouts), read at each use. `wake` is called when
  // a heartbeat came back.
  LeaseKeeper(boost::asio::io_context& io, Clock& clock, DbWorker& db, std::weak_ptr<const void> lifetime,
              const Config& config, TenantRegistry& tenants, reconcile::FairScheduler& scheduler,
              std::function<void()> wake);

  // The tenant lease and its send margin now (the config's, or the one before a reload while
  // requests dispatched under it may still be out).
  reconcile::LeaseTiming timing(reconcile::Instant now) const;
  // How long a claimed row's lease lasts (Store::claim_due).
  std::chrono::milliseconds claim_lease(reconcile::Instant now) const;

  // Around a config reload: before it, the timing requests dispatched so far were sent under;
  // after it, every tenant stops dispatching earlier by as much as the send margin grew.
  void before_reload(reconcile::Instant now);
  void after_reload(reconcile::Instant now);

  // On every turn of the run loop: stops every owned tenant's sending once the leases' send_until
  // has passed, and sends a heartbeat when one is due (and none is out).
  void on_turn(reconcile::Instant now);
  // When time alone makes something of ours due: the next heartbeat, or the owned tenants'
  // send_until (after which they must stop sending). nullopt: only a heartbeat's answer can.
  std::optional<reconcile::Instant> wake_at() const;

 private:
  void heartbeat(reconcile::Instant now);
  void on_heartbeat(const reconcile::Ownership& ownership, const std::vector<reconcile::ShareKey>& released,
                    reconcile::Instant send_until);
  // The steady state of on_heartbeat (nothing acquired, lost or given up): false when the fair
  // share asks for a hand-over, which only the whole of on_heartbeat does.
  bool renew_quietly(int fair_share, reconcile::Instant send_until, reconcile::Instant now);
  void give_up_beyond_count(TenantRuntime& t);
  void hand_over(const std::vector<reconcile::ShareKey>& shares, int fair_share);

  boost::asio::io_context& io_;
  Clock& clock_;
  DbWorker& db_;
  std::weak_ptr<const void> lifetime_;
  const Config& config_;
  TenantRegistry& tenants_;
  reconcile::FairScheduler& scheduler_;
  std::function<void()> wake_;
  reconcile::Instant next_heartbeat_{};
  bool heartbeat_out_ = false;
  // The owned tenants' send_until: one heartbeat renews them all to the same instant (nullopt:
  // none owned, or it passed and they were told).
  std::optional<reconcile::Instant> send_until_;
  // The epoch of our instance row that the last heartbeat returned (migrations/0007).
  std::optional<std::int64_t> epoch_;
  // The next heartbeat asks for every share held to be listed (after a fence).
  bool list_next_ = true;
  std::optional<reconcile::LeaseTiming> timing_before_reload_;
  reconcile::Instant reloaded_at_{};
};

}  // namespace callbackd::engine
