// What the run loop reads from and writes to its database: the engine's one port to storage.
// daemon/pg implements it over PostgreSQL (pg::ReconcileStore); the engine tests implement it
// in memory. Std and core types only. One Store is used from ONE thread (the daemon's
// database thread, engine/db_worker.h); calls block and throw DatabaseError (core/error.h)
// when the database cannot do what was asked.
//
// The invariants every implementation keeps (migrations/0001_init.sql has the tables):
//  - Claiming: claim_due() takes due, unclaimed (or lease-lapsed) queue entries of a tenant,
//    stamps each with a fresh claim token and a lease (now + lease). So no sub-merchant is
//    ever in flight from two instances at once.
//  - Fencing: record() writes a row's state and touches its queue entry ONLY while the entry
//    still carries the claim token of the attempt (an instance whose lease lapsed, or a row
//    whose desired values changed meanwhile, cannot overwrite anything); the audit row is
//    written regardless, because the attempt happened. Settling deletes the entry only if its
//    revision is still the claimed one.
//  - Atomicity: record() writes all its attempts' audit rows and states together, so a crash
//    leaves either all or none.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/reconcile/learned_rates.h"
#include "core/reconcile/ownership.h"
#include "core/reconcile/work.h"
#include "core/status/page.h"
#include "core/tenant.h"

namespace callbackd::engine {

class Store {
 public:
  virtual ~Store() = default;

  // After a lost connection every call throws DatabaseError until reconnect() succeeds.
  virtual void reconnect() = 0;
  virtual bool connected() const = 0;

  virtual std::vector<TenantRow> tenants() = 0;
  // Tenants paused by an error (tenant_state rows with a paused_reason), by tenant_id.
  virtual std::map<std::string, reconcile::StoredTenantPause> tenant_pauses() = 0;
  virtual void pause_tenant(const std::string& tenant_id, const std::string& error_code, const std::string& reason,
                            std::chrono::milliseconds probe_in) = 0;
  virtual void resume_tenant(const std::string& tenant_id) = 0;

  // Platform certificates a download of a certificate-mode tenant listed and the daemon
  // trusted (callbackd.platform_certificates, migrations/0009): each stored, or its fetched
  // time moved when already stored; the tenant's expired ones deleted. One transaction.
  virtual void store_platform_certificates(const std::string& tenant_id,
                                           const std::vector<TenantRow::StoredCertificate>& certificates) = 0;
  // The first response verified with the tenant's certificate `serial` (first_used_at).
  virtual void platform_certificate_used(const std::string& tenant_id, const std::string& serial) = 0;

  // Claims for several tenants at once: one result per request, in the requests' order.
  virtual std::vector<reconcile::ClaimResult> claim_due(const std::vector<reconcile::ClaimRequest>& requests,
                                                        std::chrono::milliseconds lease) = 0;
  // Gives claims back without an attempt: the entries become claimable at once.
  virtual void release(const std::vector<std::int64_t>& claim_tokens) = 0;
  // Settles claimed entries that need no attempt (reconcile::judge_work_item said drop):
  // deletes each entry that still carries the item's claim token and revision; no audit row.
  virtual void drop(const std::vector<reconcile::WorkItem>& items) = 0;

  // All records and events together (see Atomicity). Calling it again with the same batch
  // after an unknown outcome is safe (fencing). The same mchid twice in one batch: every
  // record is audited and the LAST one decides the row's state and queue entry. A record
  // with claim_token 0 is audited only.
  virtual void record(const std::vector<reconcile::AttemptRecord>& records,
                      const std::vector<reconcile::TenantEvent>& events) = 0;

  // Drift checks (migrations/0011): up to each request's limit of its tenant's in-sync rows whose
  // next check is due and that have no queued change, each stamped with a fresh read token and
  // its next check moved to now + lease (a lapsed check falls due again by itself).
  virtual std::vector<reconcile::DriftCheck> claim_drift_checks(const std::vector<reconcile::ClaimRequest>& requests,
                                                                std::chrono::milliseconds lease) = 0;
  // What drift checks found, together (one statement: states, audit rows, repairs); fenced by
  // each check's read token (reconcile::DriftCheckRecord). Safe to repeat.
  virtual void record_drift_checks(const std::vector<reconcile::DriftCheckRecord>& records) = 0;

  // Queues every desired row of sending tenants for a full resync; returns how many.
  virtual std::size_t queue_resync() = 0;

  // One heartbeat: records this instance as alive, gives up the leases in `release`, renews
  // its other leases to now + lease, and acquires free or lapsed shares of tenants' rates
  // (migrations/0013) up to its fair share; never takes a lease another live instance holds. With `dead_owner_margin`,
  // an instance proven dead on this machine has its leases cut to now + the margin. `expected_shares`: how many shares
  // the caller holds after `release` as far as it knows; when the database agrees, Ownership::owned lists only the
  // shares acquired now (Ownership::listed false), which keeps an idle heartbeat of thousands of shares cheap. nullopt:
  // list them all.
  virtual reconcile::Ownership heartbeat(std::chrono::milliseconds lease,
                                         const std::vector<reconcile::ShareKey>& release,
                                         std::optional<std::chrono::milliseconds> dead_owner_margin,
                                         std::optional<int> expected_shares) = 0;
  // Gives up every lease of this instance (clean shutdown), so another takes over at once.
  virtual void release_all_tenants() = 0;

  // The poll: the tenants with a queue entry a claim could take now (or that another instance
  // holds), by tenant_id; the run loop wakes only them.
  virtual std::vector<std::string> due_tenants() = 0;
  // For --exit-when-idle: queue entries of tenants in mode apply and not paused by error.
  virtual std::size_t pending_for_sending_tenants() = 0;
  // For metrics: per tenant with entries, how many and the oldest change's age.
  virtual std::vector<reconcile::TenantQueue> queue_ages() = 0;
  // The status page (core/status/page.h): what `query` needs, read-only, every list bounded
  // by the LIMITs of core/status/page.h. Run by app/operations.cpp through the DbWorker, at
  // most once per page per 2 s (its cache).
  virtual status::DatabaseView read_status(const status::Query& query) = 0;
  // The row counts' bookkeeping (migrations/0014_row_state_counts.sql): folds at most
  // `max_rows` recorded changes into the kept counts and answers how many it took; 0 when
  // there were none, or another instance is folding them.
  virtual int fold_row_state_changes(int max_rows) = 0;
  // Rates learned from 429s (core/reconcile/learned_rates.h, callbackd.learned_rates), each
  // with its age, read once at start-up; and the changes to write (a nullopt rate forgets the
  // row), one statement.
  virtual std::vector<reconcile::LearnedRate> learned_rates() = 0;
  virtual void save_learned_rates(const std::vector<reconcile::LearnedRate>& changes) = 0;
  // Statements sent to the server since construction (for metrics, tests and the bench).
  virtual std::uint64_t statements_executed() const = 0;
};

}  // namespace callbackd::engine
