// Reads back what WeChat Pay holds (GET /v3/marketing/favor/callbacks?mchid=M; issue 15,
// docs/sql.md "Live state"), for two reasons:
//  - adoption: a claimed row that callbackd never applied, of a tenant with adopt_existing, is
//    read before its POST. When WeChat Pay already holds the desired notify_url (and the desired
//    switch is NULL or true: the switch cannot be read back), the row is recorded in sync with
//    the audit outcome `adopted` and the read's Request-ID, through the same record statement as
//    every attempt; otherwise it goes to the tenant's send buffer as before.
//  - drift checks (reconciler.drift_check_interval): rows in sync whose check is due are claimed
//    (Store::claim_drift_checks, fenced by a read token), read, and what was found recorded
//    (Store::record_drift_checks): a different live value makes the row `drifted`.
// Every read takes a slot of one ReadPacer (core/reconcile/live_state.h), round-robin over the
// tenants with reads waiting, never a slot of a tenant's set-call pacer. Reads in flight are
// capped at half of wechatpay.max_connections_per_host, so that reads never crowd the set calls
// out of the connection pool.
//
// A read is classified like a POST (core/wechatpay/live_read.h). A 429 slows the read pacer
// only, and the read is tried again. Any other failure of an adoption read sends the row as if
// it had not been read (the read only saves a POST; the POST's own outcome then decides about the
// row and the tenant, a tenant error pausing the tenant as usual); a failed drift check leaves the
// row in sync and checks it again at its next turn of the interval.
//
// Fencing: an adoption read acts on a claimed queue entry only while the tenant still sends here
// and well within the claim's lease (older claims are given back unread); its record is fenced
// by the claim token like any attempt's. A drift check's record is fenced by its read token.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/reconcile/live_state.h"
#include "core/reconcile/scheduler.h"
#include "core/reconcile/work.h"
#include "core/wechatpay/live_read.h"
#include "engine/clock.h"
#include "engine/db_worker.h"
#include "http/https_client.h"

namespace callbackd::engine {

class LeaseKeeper;
class RecordBatcher;
class TenantRegistry;
struct ReconcilerOptions;
struct ReconcilerStats;
struct TenantRuntime;

class LiveReader {
 public:
  LiveReader(boost::asio::io_context& io, Clock& clock, http::Sender& client, DbWorker& db,
             std::weak_ptr<const void> lifetime, const Config& config, const ReconcilerOptions& options,
             TenantRegistry& tenants, const reconcile::FairScheduler& scheduler, const LeaseKeeper& leases,
             RecordBatcher& records, ReconcilerStats& stats, std::function<void()> wake);

  // A claimed row the diff would send because it was never applied, of a tenant that adopts:
  // read first. (The caller checked both, and already_read.)
  void read_before_send(TenantRuntime& t, reconcile::WorkItem item, reconcile::Instant now);
  // This revision of the row was read already and sent on to its POST (which came back 429, or
  // the claim was given back): it is not read again. Remembered for the last 100,000 rows.
  bool already_read(const reconcile::WorkItem& item) const;
  // Adoption reads of the tenant waiting or in flight: claimed rows the claim gate counts as
  // buffered, so a tenant never claims more than one batch ahead of its reads.
  std::size_t adoption_pending(const std::string& tenant_id) const;

  // On every turn: claims due drift checks when there is room, and starts the reads the pacer
  // allows. `stopping`: nothing new is claimed or read.
  void on_turn(reconcile::Instant now, bool stopping);
  // When time alone lets a read start or a drift claim be made (nullopt: only an event can).
  std::optional<reconcile::Instant> wake_at(reconcile::Instant now) const;
  std::size_t in_flight() const { return in_flight_; }
  // Nothing waiting, nothing in flight, no claim out.
  bool idle() const;
  // Shutdown: every adoption claim waiting is given back (drift checks lapse on their own).
  void release_all();
  // SIGHUP: the read rate may have changed.
  void reconfigure();

 private:
  struct Adoption {
    reconcile::WorkItem item;
    reconcile::Instant claimed_at{};
  };
  struct Queue {
    std::deque<Adoption> adoptions;
    std::deque<reconcile::DriftCheck> drift_checks;
    std::size_t adoptions_in_flight = 0;
    bool empty() const { return adoptions.empty() && drift_checks.empty(); }
  };

  void claim_drift_checks(reconcile::Instant now);
  // The next tenant after the round-robin cursor with a read waiting (giving back adoption
  // claims that may not be read any more on the way); nullptr when none.
  Queue* next_queue(reconcile::Instant now, std::string& tenant_id);
  bool may_read(const std::string& tenant_id, const Adoption& a, reconcile::Instant now) const;
  // The tenant sends from here now: mode apply with the lease held, and not paused by an error
  // (a paused tenant's claimed rows go back, as TenantRegistry::pause gives its buffer back).
  bool sends_now(const std::string& tenant_id, reconcile::Instant now) const;
  boost::asio::awaitable<void> read(std::string tenant_id, std::optional<Adoption> adoption,
                                    std::optional<reconcile::DriftCheck> check, reconcile::Instant sent_at);
  void adoption_read(const std::string& tenant_id, Adoption adoption, const wechatpay::ReadOutcome& read,
                     std::optional<int> latency_ms);
  void drift_read(const std::string& tenant_id, reconcile::DriftCheck check, const wechatpay::ReadOutcome& read);
  reconcile::Duration next_check_in(const std::string& sub_mchid) const;
  std::size_t max_in_flight() const;
  int drift_budget() const;

  boost::asio::io_context& io_;
  Clock& clock_;
  http::Sender& client_;
  DbWorker& db_;
  std::weak_ptr<const void> lifetime_;
  const Config& config_;
  const ReconcilerOptions& options_;
  TenantRegistry& tenants_;
  const reconcile::FairScheduler& scheduler_;
  const LeaseKeeper& leases_;
  RecordBatcher& records_;
  ReconcilerStats& stats_;
  std::function<void()> wake_;
  reconcile::ReadPacer pacer_;
  std::map<std::string, Queue> queues_;  // by tenant; only tenants with reads waiting or in flight
  std::string last_served_;
  std::size_t in_flight_ = 0;
  std::size_t drift_waiting_ = 0;
  bool drift_claim_out_ = false;
  reconcile::Instant next_drift_claim_{};
  std::size_t drift_cursor_ = 0;
  bool stopping_ = false;                               // release_all(): nothing is buffered for sending any more
  std::map<std::string, std::int64_t> read_revisions_;  // sub-merchant -> revision read and sent on
};

}  // namespace callbackd::engine
