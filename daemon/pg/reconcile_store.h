// The engine's store (engine/store.h) over PostgreSQL (and, through pg/listener.h, the LISTEN
// connection). Std types only: libpqxx stays in the .cpp files, one per concern (claims.cpp,
// records.cpp, tenant_leases.cpp; the session in reconcile_store.cpp, errors in errors.cpp).
// One ReconcileStore owns one connection and is used from ONE thread (the daemon's database thread); calls block.
//
// How it keeps engine/store.h's invariants (migrations/0001_init.sql has the tables): claims
// use FOR UPDATE SKIP LOCKED and tokens from callbackd.claim_token_seq; the enqueue trigger
// clears a claim when the desired row changes, so fencing by claim_token also fences out a
// row changed while its request was in flight; record() is one statement of data-modifying
// CTEs, so one batch is one transaction and one round trip.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/instance_liveness.h"
#include "engine/store.h"
#include "pg/listener.h"

namespace callbackd::pg {

class ReconcileStore final : public engine::Store {
 public:
  // Connects (throws DatabaseError) and declares the named statements (libpqxx prepares each on
  // first use). `instance` is written to pending_work.claimed_by and audit_log.instance
  // ("host:pid"). `probe` says whether a pid of our PID namespace still exists: the heartbeat
  // asks it about other instances of this machine (core/instance_liveness.h); tests inject
  // their own, the daemon uses kill(pid, 0). `application_name` is what pg_stat_activity shows
  // of the connection (unless database.url names one).
  ReconcileStore(const DatabaseConfig& db, std::string instance, PidProber probe = probe_pid,
                 std::string application_name = "callbackd");
  ~ReconcileStore() override;
  ReconcileStore(const ReconcileStore&) = delete;
  ReconcileStore& operator=(const ReconcileStore&) = delete;

  // Throws DatabaseError on a lost connection; reconnect() then tries once. After a lost
  // connection every call throws DatabaseError until reconnect() succeeds (libpqxx 6 would
  // otherwise reconnect silently and hide that the old session's work is gone).
  void reconnect() override;
  bool connected() const override;

  std::vector<TenantRow> tenants() override;
  std::map<std::string, reconcile::StoredTenantPause> tenant_pauses() override;
  void pause_tenant(const std::string& tenant_id, const std::string& error_code, const std::string& reason,
                    std::chrono::milliseconds probe_in) override;
  void resume_tenant(const std::string& tenant_id) override;
  void store_platform_certificates(const std::string& tenant_id,
                                   const std::vector<TenantRow::StoredCertificate>& certificates) override;
  void platform_certificate_used(const std::string& tenant_id, const std::string& serial) override;

  // One statement for all `requests` (distinct tenants; a repeated tenant is a bug), results in
  // the requests' order. Per tenant: FOR UPDATE SKIP LOCKED, at most `limit` entries, due_at
  // order, a fresh claim_token from
  // callbackd.claim_token_seq, claimed_by = the instance name, lease_until = now() + lease.
  // One tenant's claim, the same statement.
  reconcile::ClaimResult claim_due(const std::string& tenant_id, int limit, std::chrono::milliseconds lease);
  std::vector<reconcile::ClaimResult> claim_due(const std::vector<reconcile::ClaimRequest>& requests,
                                                std::chrono::milliseconds lease) override;
  void release(const std::vector<std::int64_t>& claim_tokens) override;
  void drop(const std::vector<reconcile::WorkItem>& items) override;

  // One transaction, one round trip (one statement of data-modifying CTEs, autocommit). Empty
  // input: no-op. Throws DatabaseError; then nothing of the batch was written, or (connection
  // lost while the statement ran) the outcome is unknown: calling record() again with the same
  // batch is safe, since an audit row is unique per claim_token and a settled entry no longer
  // carries the token.
  void record(const std::vector<reconcile::AttemptRecord>& records,
              const std::vector<reconcile::TenantEvent>& events) override;
  void record(const std::vector<reconcile::AttemptRecord>& records) { record(records, {}); }

  std::vector<reconcile::DriftCheck> claim_drift_checks(const std::vector<reconcile::ClaimRequest>& requests,
                                                        std::chrono::milliseconds lease) override;
  void record_drift_checks(const std::vector<reconcile::DriftCheckRecord>& records) override;

  std::size_t queue_resync() override;

  // --- Several instances: tenant leases (migrations/0003_tenant_leases.sql) ---------------
  // One statement (sql/heartbeat.sql, autocommit): one round trip in the steady state. With
  // `dead_owner_margin`, it also lists the other instances of this kernel boot and PID
  // namespace; one whose process is gone (core/instance_liveness.h) has its leases cut to
  // now() + the margin and is forgotten by a second statement (per dead instance), so its
  // tenants are taken over on a heartbeat after that margin. The counts returned leave it out.
  reconcile::Ownership heartbeat(std::chrono::milliseconds lease, const std::vector<reconcile::ShareKey>& release,
                                 std::optional<std::chrono::milliseconds> dead_owner_margin,
                                 std::optional<int> expected_shares) override;
  reconcile::Ownership heartbeat(std::chrono::milliseconds lease, const std::vector<reconcile::ShareKey>& release,
                                 std::optional<std::chrono::milliseconds> dead_owner_margin) {
    return heartbeat(lease, release, dead_owner_margin, std::nullopt);
  }
  reconcile::Ownership heartbeat(std::chrono::milliseconds lease, const std::vector<reconcile::ShareKey>& release) {
    return heartbeat(lease, release, std::nullopt, std::nullopt);
  }
  void release_all_tenants() override;

  std::vector<std::string> due_tenants() override;
  std::size_t pending_for_sending_tenants() override;
  // One cheap statement, sql/queue_ages.sql.
  std::vector<reconcile::TenantQueue> queue_ages() override;
  // status_page.cpp: the sql/status_*.sql statements in one READ ONLY transaction.
  status::DatabaseView read_status(const status::Query& query) override;
  // claims.cpp: sql/fold_row_state_changes.sql.
  int fold_row_state_changes(int max_rows) override;
  // tenant_leases.cpp: sql/learned_rates.sql, sql/save_learned_rates.sql.
  std::vector<reconcile::LearnedRate> learned_rates() override;
  void save_learned_rates(const std::vector<reconcile::LearnedRate>& changes) override;
  // record() sends exactly one per batch.
  std::uint64_t statements_executed() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd::pg
