// engine::Store in memory, for the engine tests: the tables of migrations/0001-0006 that the
// run loop touches, as maps, with the invariants store.h lists (claim tokens and leases,
// fencing by claim token and revision, all-or-nothing record(), pauses, tenant leases with the
// fair share). The database's now() is the simulated clock's steady time.
//
// Where it differs from PostgreSQL (pg/reconcile_store.cpp), deliberately:
//  - one instance only: heartbeat() never sees another live instance, so the fair share is
//    every tenant, and dead-instance takeover (0005) never happens (`dead_owner_margin` is
//    accepted and unused); recent_sends is always empty;
//  - no clock skew: "now()" and the daemon's clock are one clock;
//  - a call takes no simulated time (DbWorker's inline mode runs it as one io_context event);
//  - no connection: connected() is true and reconnect() does nothing, unless a test makes
//    calls fail (fail_heartbeats_from), which throws DatabaseError as a failed statement does;
//  - statements_executed() counts what pg::ReconcileStore would send for the same call (a
//    heartbeat is 1, tenants() is 2, an empty release/drop/record 0).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/store.h"

namespace callbackd::engine_test {

using reconcile::Duration;
using reconcile::Instant;

class MemoryStore final : public engine::Store {
 public:
  struct Desired {
    std::string tenant_id;
    std::optional<std::string> notify_url;
    std::optional<bool> push_switch;
    std::int64_t revision = 0;
  };
  struct QueueEntry {  // callbackd.pending_work
    std::string tenant_id;
    std::int64_t revision = 0;
    Instant due_at{};
    bool resync = false;
    std::optional<std::string> claimed_by;
    std::int64_t claim_token = 0;  // 0: not claimed
    Instant lease_until{};
  };
  struct State {  // callbackd.sub_merchant_state
    std::string tenant_id;
    reconcile::RecordedState recorded;
    int attempts = 0;
    std::optional<std::string> last_error_code;
    // migrations/0011: the drift check's schedule and claim, and the last live value read.
    std::optional<Instant> next_read_at;
    std::int64_t read_token = 0;
    std::optional<std::string> live_notify_url;
  };
  struct Audit {  // callbackd.audit_log
    Instant at{};
    std::string tenant_id;
    std::optional<std::string> sub_mchid;  // nullopt: a tenant event
    std::string outcome;
    std::string error_code;
    std::int64_t claim_token = 0;
    std::optional<std::string> notify_url{};  // drift_detected: the live value
  };
  struct Pause {  // callbackd.tenant_state with a paused_reason
    std::string error_code;
    std::string reason;
    Instant paused_at{};
    Instant next_probe_at{};
  };
  struct TenantLease {  // callbackd.tenant_leases
    std::string instance_id;
    Instant lease_until{};
    std::int64_t fencing_token = 0;
  };

  MemoryStore(const engine::Clock& clock, std::string instance);

  // --- What operators and triggers do (the tests' side) -----------------------------------
  void add_tenant(TenantRow row);
  // The stored row of `tenant_id` (an operator's UPDATE), or null.
  TenantRow* tenant(const std::string& tenant_id);
  // INSERT/UPDATE of desired_callbacks: a new revision, queued due now with any claim dropped
  // (the enqueue trigger of 0002). The NOTIFY is the test's to deliver.
  void set_desired(const std::string& sub_mchid, const std::string& tenant_id, std::optional<std::string> notify_url,
                   std::optional<bool> push_switch = std::nullopt);
  // tenants.adopt_existing / drift_policy (migrations/0011); unset: adopt_existing false (the
  // engine tests that predate adoption send every row), drift_policy "repair".
  void set_live_policy(const std::string& tenant_id, bool adopt_existing, std::string drift_policy = "repair");
  // From `at` on, heartbeat() fails as a statement that cannot complete (lock timeout).
  void fail_heartbeats_from(Instant at) { heartbeats_fail_from_ = at; }
  // The first heartbeat at or after `at` returns a new epoch, as after another instance fenced
  // this one to take tenants over (migrations/0007); when that heartbeat ran: fenced_heartbeat().
  void fence_at(Instant at) { fence_at_ = at; }
  std::optional<Instant> fenced_heartbeat() const { return fenced_heartbeat_; }

  // --- engine::Store ----------------------------------------------------------------------
  void reconnect() override {}
  bool connected() const override { return true; }
  std::vector<TenantRow> tenants() override;
  std::map<std::string, reconcile::StoredTenantPause> tenant_pauses() override;
  void pause_tenant(const std::string& tenant_id, const std::string& error_code, const std::string& reason,
                    std::chrono::milliseconds probe_in) override;
  void resume_tenant(const std::string& tenant_id) override;
  void store_platform_certificates(const std::string& tenant_id,
                                   const std::vector<TenantRow::StoredCertificate>& certificates) override;
  void platform_certificate_used(const std::string& tenant_id, const std::string& serial) override;
  std::vector<reconcile::ClaimResult> claim_due(const std::vector<reconcile::ClaimRequest>& requests,
                                                std::chrono::milliseconds lease) override;
  void release(const std::vector<std::int64_t>& claim_tokens) override;
  void drop(const std::vector<reconcile::WorkItem>& items) override;
  void record(const std::vector<reconcile::AttemptRecord>& records,
              const std::vector<reconcile::TenantEvent>& events) override;
  std::vector<reconcile::DriftCheck> claim_drift_checks(const std::vector<reconcile::ClaimRequest>& requests,
                                                        std::chrono::milliseconds lease) override;
  void record_drift_checks(const std::vector<reconcile::DriftCheckRecord>& records) override;
  std::size_t queue_resync() override;
  reconcile::Ownership heartbeat(std::chrono::milliseconds lease, const std::vector<reconcile::ShareKey>& release,
                                 std::optional<std::chrono::milliseconds> dead_owner_margin,
                                 std::optional<int> expected_shares) override;
  void release_all_tenants() override;
  std::vector<std::string> due_tenants() override;
  std::size_t pending_for_sending_tenants() override;
  std::vector<reconcile::TenantQueue> queue_ages() override;
  // Counts are derived from the rows whenever asked here: there is never anything to fold.
  int fold_row_state_changes(int) override { return 0; }
  // The engine tier never serves the status page (tests/e2e does, on PostgreSQL): throws.
  status::DatabaseView read_status(const status::Query& query) override;
  std::uint64_t statements_executed() const override { return statements_; }
  // callbackd.learned_rates: kept by key, read back with the age they are given here.
  std::vector<reconcile::LearnedRate> learned_rates() override;
  void save_learned_rates(const std::vector<reconcile::LearnedRate>& changes) override;
  const std::map<reconcile::LearnedKey, double>& saved_learned_rates() const { return learned_; }
  // A row as an earlier run left it, `rate.age` old.
  void put_learned_rate(const reconcile::LearnedRate& rate);

  // --- Reading back -----------------------------------------------------------------------
  const std::map<std::string, QueueEntry>& queue() const { return queue_; }
  const std::map<std::string, State>& states() const { return states_; }
  const std::vector<Audit>& audit() const { return audit_; }
  const std::map<std::string, Pause>& pauses() const { return pauses_; }
  // Every lease this instance was granted or renewed to, per tenant, in order: (granted at,
  // lease_until). The lease-margin test checks each request against them.
  // Every claim of a row: (claimed at, lease_until), in order, by sub-merchant.
  const std::map<std::string, std::vector<std::pair<Instant, Instant>>>& claim_history() const {
    return claim_history_;
  }
  const std::map<std::string, std::vector<std::pair<Instant, Instant>>>& lease_history() const {
    return lease_history_;
  }
  std::uint64_t calls() const { return calls_; }  // Store calls of any kind
  const std::map<std::string, std::uint64_t>& calls_by_kind() const { return calls_by_kind_; }
  std::size_t in_sync(const std::string& tenant_id = "") const;

 private:
  Instant now() const { return clock_.now(); }
  reconcile::ClaimResult claim_one(const std::string& tenant_id, int limit, std::chrono::milliseconds lease);

  const engine::Clock& clock_;
  std::string instance_;
  std::vector<TenantRow> tenants_;  // by insertion; ORDER BY tenant_id where SQL orders
  std::map<std::string, Desired> desired_;
  std::map<std::string, std::pair<bool, std::string>> live_policy_;  // tenant -> (adopt_existing, drift_policy)
  std::map<std::string, QueueEntry> queue_;
  std::map<std::string, State> states_;
  std::vector<Audit> audit_;
  std::set<std::int64_t> audited_tokens_;  // the audit's unique index on claim_token
  std::map<std::string, Pause> pauses_;
  std::set<std::pair<std::string, std::string>> first_used_;  // platform_certificates.first_used_at set
  std::map<std::string, TenantLease> leases_;
  std::map<std::string, std::vector<std::pair<Instant, Instant>>> lease_history_;
  std::map<std::string, std::vector<std::pair<Instant, Instant>>> claim_history_;
  std::int64_t revision_seq_ = 0;
  std::int64_t claim_token_seq_ = 0;
  std::int64_t lease_seq_ = 0;
  std::uint64_t statements_ = 0;
  std::map<reconcile::LearnedKey, double> learned_;
  std::map<reconcile::LearnedKey, reconcile::Duration> learned_ages_;
  std::uint64_t calls_ = 0;
  std::map<std::string, std::uint64_t> calls_by_kind_;  // by Store function name
  void count_call(const char* kind) {
    ++calls_;
    ++calls_by_kind_[kind];
  }
  std::optional<Instant> heartbeats_fail_from_;
  std::int64_t epoch_ = 1;
  std::optional<Instant> fence_at_;
  std::optional<Instant> fenced_heartbeat_;
};

}  // namespace callbackd::engine_test
