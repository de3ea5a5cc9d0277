// The daemon's run loop (`callbackd run`): claims due rows per tenant, paces and sends them,
// classifies what came back and records every attempt. All decisions are the pure functions
// of core/reconcile (scheduler, pacer, tenant state, row decision); this class only joins
// its pieces, each in its own file: the tenant registry (tenants, keys, pauses), the lease
// keeper (heartbeat, ownership), the dispatcher (sign, send, classify) and the record batcher
// (batching, flush, drain). The HTTPS client runs on the io_context thread, PostgreSQL on the
// DbWorker thread.
//
// Lifecycle of a row: claimed (pending_work entry stamped with a claim token and a lease) ->
// validated (invalid rows are recorded at once and never sent) -> buffered per tenant ->
// dispatched when FairScheduler gives its tenant a slot -> signed and sent -> verified and
// classified -> its AttemptRecord batched -> written with its audit row in one transaction.
// A crash anywhere loses only what was not yet written: the entry's lease lapses and the row
// is sent again (the endpoint is idempotent), so every row still converges.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/reconcile/claim_gate.h"
#include "core/reconcile/lease_timing.h"
#include "core/reconcile/row_decision.h"
#include "core/reconcile/scheduler.h"
#include "core/tenant.h"
#include "core/reconcile/work.h"
#include "engine/certificate_keeper.h"
#include "engine/clock.h"
#include "engine/db_worker.h"
#include "engine/dispatcher.h"
#include "engine/learned_rate_keeper.h"
#include "engine/lease_keeper.h"
#include "engine/live_reader.h"
#include "engine/record_batcher.h"
#include "engine/tenant_registry.h"
#include "http/https_client.h"

namespace callbackd::engine {

// One finished attempt, as operations (metrics) see it: never a sub-merchant id.
struct AttemptObserved {
  std::string tenant_id;
  std::string outcome;            // wechatpay::outcome_name
  std::string error_code;         // "" when applied
  std::optional<int> latency_ms;  // nullopt when nothing was sent
};

struct ReconcilerOptions {
  bool exit_when_idle = false;  // return once nothing is due or retrying for any sending tenant
  std::string instance;         // "host:pid", recorded in claims and audit rows
  // Operations hooks (app/operations.cpp: sd_notify, metrics), called on the io_context
  // thread; either may be empty.
  // After a read of callbackd.tenants was applied and the keys it asked for were loaded.
  std::function<void()> on_tenants_loaded;
  std::function<void(const AttemptObserved&)> on_attempt;
  // A row's state changed by this process's decision (an attempt's outcome, an invalid verdict),
  // as sync_status names states: the progress table's counts (app/progress_display.h).
  std::function<void(const std::string& tenant_id, reconcile::RowState from, reconcile::RowState to)> on_row_moved;
  // Seeds the loop's randomness (the jitter of backoffs and probes); unset: std::random_device.
  // The engine tests fix it, so that a run is reproducible.
  std::optional<std::uint64_t> random_seed;
  // Where tenants' key files are loaded (engine/key_loader.h); empty: a thread of their own.
  // The engine tests post the loads to the io_context, so that simulated time stays
  // deterministic.
  KeyLoader::Runner run_key_load;
};

// Counters for logs, metrics and tests.
struct ReconcilerStats {
  std::uint64_t sent = 0;
  std::uint64_t recorded = 0;
  std::uint64_t invalid = 0;
  std::map<std::string, std::uint64_t> outcomes;  // by outcome name
  std::uint64_t record_batches = 0;
  std::uint64_t endpoint_holds = 0;  // times WeChat Pay was found unreachable (hold entered)
  std::map<std::string, std::uint64_t> endpoint_holds_by_reason;  // by reconcile::endpoint_hold_reason_name
  std::uint64_t endpoint_probes_failed = 0;                       // probes during a hold that could not reach it either
  std::uint64_t loop_turns = 0;    // times the run loop woke and looked at its work (tests/engine count them)
  std::uint64_t tenant_looks = 0;  // tenants the loop looked at over all turns (awake ones; attention.h)
  // GET /v3/certificates by how it went (DownloadVerdict::outcome: accepted, not_found, bad_tag, …).
  std::map<std::string, std::uint64_t> certificate_downloads;
  // GET /v3/marketing/favor/callbacks (engine/live_reader.h) by what came of it: answered,
  // nothing_set, or the failure's outcome name (transient, rate_limited, ...).
  std::map<std::string, std::uint64_t> reads;
  std::uint64_t adopted = 0;         // rows recorded in sync from a read, without a POST
  std::uint64_t drift_detected = 0;  // drift checks that found a live value other than the applied one
};

class Reconciler {
 public:
  // `clock` times everything (engine/clock.h); `client` sends to WeChat Pay; `db` runs the
  // store's calls. All three outlive the reconciler.
  Reconciler(boost::asio::io_context& io, Config config, Clock& clock, http::Sender& client, DbWorker& db,
             ReconcilerOptions options);
  ~Reconciler();
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Runs until stop() (then drains within reconciler.shutdown_grace) or, with exit_when_idle,
  // until idle. Must be co_spawned on the io_context given to the constructor.
  boost::asio::awaitable<void> run();

  // Stop claiming; let requests in flight finish within shutdown_grace; record what is known;
  // give unsent claims back. Safe to call from the io_context thread (signal handlers).
  void stop();
  // SIGHUP: a new, already validated config (backoff, poll and resync intervals, credentials
  // directory, the wechatpay timeouts: passed on to the HTTPS client, whose deadlines the
  // tenant lease's send margin is derived from) and a re-read of the tenants.
  void reload(Config config);
  // A NOTIFY arrived (from the listener thread, posted to the io_context): `channel`
  // callbackd_desired with the tenant_id as payload, or callbackd_tenants.
  void on_notification(const std::string& channel, const std::string& tenant_id);
  // The LISTEN connection was lost and is back: notifications sent meanwhile are gone, so every
  // tenant looks for due rows (and the tenants are read) now rather than at the next poll.
  void on_notifications_missed();

  const ReconcilerStats& stats() const { return stats_; }
  std::vector<reconcile::TenantSnapshot> snapshot() const;
  // The platform certificates certificate-mode tenants hold (for metrics).
  struct PlatformCertificateSeen {
    std::string tenant_id;
    std::string serial;
    std::chrono::system_clock::time_point expires_at;
  };
  std::vector<PlatformCertificateSeen> platform_certificates() const;
  // True while WeChat Pay is held as unreachable (reconcile::EndpointHold), and why (or why it
  // was held last).
  bool endpoint_held() const { return scheduler_.endpoint().held(); }
  reconcile::EndpointHoldReason endpoint_hold_reason() const { return scheduler_.endpoint().reason(); }

 private:
  // Claims (the rest of the loop's work is in its pieces below).
  reconcile::ClaimInputs claim_inputs(const TenantRuntime& t, reconcile::Instant now) const;
  // One claim statement for every awake tenant that needs rows (chunked), and the tenants that
  // need nothing put to sleep (core/reconcile/attention.h).
  void claim_for_awake_tenants(reconcile::Instant now);
  void claim(std::vector<reconcile::ClaimRequest> requests, reconcile::Instant now);
  // `send_by`: the claim's last instant to dispatch a row (reconcile::claim_send_by).
  void on_claimed(TenantRuntime& t, reconcile::ClaimResult result, int asked, reconcile::Instant now,
                  reconcile::Instant send_by);

  // The loop's own timers: the poll (safety net behind NOTIFY), the resync, the idle check.
  void poll_and_resync(reconcile::Instant now);
  void poll();
  // --exit-when-idle: true once nothing is left here or in the database.
  bool idle_confirmed(reconcile::Instant now);
  bool locally_idle() const;
  std::optional<reconcile::Instant> next_wake(reconcile::Instant now, const reconcile::SchedulerDecision& d) const;
  boost::asio::awaitable<void> drain();
  void kick();

  boost::asio::io_context& io_;
  Config config_;
  Clock& clock_;
  http::Sender& client_;
  DbWorker& db_;
  ReconcilerOptions options_;
  reconcile::RowPolicy policy_;
  reconcile::FairScheduler scheduler_;
  std::mt19937_64 random_;
  ReconcilerStats stats_;
  // Answers from the database thread and requests that finish after the reconciler was
  // destroyed check this (expired: dropped).
  std::shared_ptr<const bool> lifetime_;
  std::unique_ptr<Timer> wake_;

  // The pieces, in the order they depend on each other.
  RecordBatcher records_;           // attempt records and tenant events on their way to the database
  TenantRegistry tenants_;          // tenants, keys, pauses, buffered claims
  LeaseKeeper leases_;              // heartbeat, tenant ownership, lease timing
  CertificateKeeper certificates_;  // platform certificates of certificate-mode tenants
  Dispatcher dispatcher_;           // sign, send, classify, record
  LearnedRateKeeper learned_;       // rates learned from 429s, across restarts
  LiveReader reader_;               // reads of the live value: adoption, drift checks

  std::optional<reconcile::Instant> next_certificate_refresh_;
  reconcile::Instant next_poll_{};
  reconcile::Instant next_resync_{};
  std::optional<reconcile::Instant> next_idle_check_;
  bool idle_check_in_flight_ = false;
  bool poll_in_flight_ = false;
  bool idle_confirmed_ = false;
  bool stopping_ = false;
};

}  // namespace callbackd::engine
