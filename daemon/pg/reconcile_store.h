// What the reconciler reads from and writes to PostgreSQL. Std types only: libpqxx stays in
// reconcile_store.cpp. One ReconcileStore owns one connection and is used from ONE thread
// (the daemon's database thread); calls block.
//
// The invariants this store keeps (migrations/0001_init.sql has the tables):
//  - Claiming: claim_due() takes due, unclaimed (or lease-lapsed) pending_work entries of one
//    tenant with FOR UPDATE SKIP LOCKED, stamps them with a fresh claim_token from
//    callbackd.claim_token_seq, claimed_by = the instance name, lease_until = now() + lease.
//    So no sub-merchant is ever in flight from two instances at once.
//  - Fencing: record() writes sub_merchant_state and touches the queue entry ONLY while the
//    entry still carries the claim_token of the attempt (an instance whose lease lapsed, or a
//    row whose desired values changed meanwhile — the enqueue trigger clears the claim —
//    cannot overwrite anything); the audit row is written regardless, because the attempt
//    happened. Settling deletes the entry only if its revision is still the claimed one.
//  - Atomicity: record() writes all its attempts' audit rows and states in ONE transaction
//    (one statement round trip for the whole batch), so a crash leaves either all or none.
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
#include "core/reconcile/diff.h"
#include "core/reconcile/row_decision.h"
#include "core/tenant.h"

namespace callbackd::pg {

// One claimed pending_work entry with what sending it needs.
struct WorkItem {
  std::string mchid;  // the sub-merchant
  std::string tenant_id;
  std::int64_t claim_token = 0;
  bool resync = false;  // queued by a full resync: send even when the diff says in sync
  // desired_callbacks as of the claim (revision == pending_work.revision or newer; the
  // claimed revision is desired.revision).
  std::optional<std::string> notify_url;  // NULL notify_url is stored verbatim: invalid
  reconcile::DesiredCallback desired;     // notify_url "" when NULL; revision
  std::optional<reconcile::RecordedState> recorded;  // sub_merchant_state, nullopt if never touched
  int attempts = 0;  // sub_merchant_state.attempts when its revision == desired.revision, else 0
};

struct ClaimResult {
  std::vector<WorkItem> items;
  // When the earliest of this tenant's entries that were NOT claimable now becomes claimable,
  // as a delay from now (0 at the least); nullopt when none: an unclaimed entry due later (its
  // due_at), or an entry claimed with a lease (its lease_until: a claimed entry is already
  // due, so its due_at would say "now" and make the caller spin). Entries left unclaimed
  // only because of `limit` are not counted: a full batch means "claim again".
  std::optional<std::chrono::milliseconds> next_due_in;
};

// One attempt (or a validation verdict) and the row's new state, as decided by
// reconcile::decide_after_attempt.
struct AttemptRecord {
  std::string tenant_id;
  std::string mchid;
  std::int64_t revision = 0;     // the desired revision that was sent
  std::int64_t claim_token = 0;  // fencing, see above
  std::optional<std::string> notify_url;  // as sent (audit)
  std::optional<bool> push_switch;        // as sent (audit); nullopt: omitted
  std::string outcome;                    // wechatpay::outcome_name
  std::optional<int> http_status;
  std::string error_code;     // "" when applied
  std::string error_message;  // "" when applied, or what was odd about a verified answer (Outcome::warning)
  std::optional<std::string> request_id;
  std::optional<int> latency_ms;  // nullopt when nothing was sent (invalid)
  int attempt = 1;                // audit_log.attempt: counted attempts of this revision, this one included
  std::optional<std::string> update_time;  // verbatim, applied only
  reconcile::RowDecision decision;         // state, remove_from_queue, delay, attempts
};

// The part of an attempt's record that follows from the claimed item: which row, which
// revision and values, under which claim, the attempt number, and the outcome's name.
AttemptRecord attempt_record_for(const WorkItem& item, std::string_view outcome);

// A tenant-wide event for the audit log (mchid NULL), e.g. a tenant paused for bad keys.
struct TenantEvent {
  std::string tenant_id;
  std::string outcome;  // "tenant_error" or "tenant_resumed"
  std::string error_code;
  std::string error_message;
};

struct StoredTenantPause {
  std::string error_code;
  std::string reason;
  std::chrono::milliseconds probe_in{0};  // next_probe_at - now(), clamped at 0
};

class ReconcileStore {
 public:
  // Connects (throws DatabaseError) and declares the named statements (libpqxx prepares each on
  // first use). `instance` is written
  // to pending_work.claimed_by and audit_log.instance ("host:pid").
  ReconcileStore(const DatabaseConfig& db, std::string instance);
  ~ReconcileStore();
  ReconcileStore(const ReconcileStore&) = delete;
  ReconcileStore& operator=(const ReconcileStore&) = delete;

  // Throws DatabaseError on a lost connection; reconnect() then tries once. After a lost
  // connection every call throws DatabaseError until reconnect() succeeds (libpqxx 6 would
  // otherwise reconnect silently and hide that the old session's work is gone).
  void reconnect();
  bool connected() const;

  std::vector<TenantRow> tenants();
  // tenant_state rows with a paused_reason, by tenant_id.
  std::map<std::string, StoredTenantPause> tenant_pauses();
  void pause_tenant(const std::string& tenant_id, const std::string& error_code, const std::string& reason,
                    std::chrono::milliseconds probe_in);
  void resume_tenant(const std::string& tenant_id);

  ClaimResult claim_due(const std::string& tenant_id, int limit, std::chrono::milliseconds lease);
  // Gives claims back without an attempt (shutdown): entries become claimable at once.
  void release(const std::vector<std::int64_t>& claim_tokens);

  // All records in one transaction, one round trip (one statement, autocommit). Empty input:
  // no-op. Throws DatabaseError; then nothing of the batch was written, or (connection lost
  // while the statement ran) the outcome is unknown: calling record() again with the same
  // batch is safe, since an audit row is unique per claim_token and a settled entry no longer
  // carries the token (fencing). The same mchid twice in one batch is allowed: every record is
  // audited and the LAST one decides the row's state and queue entry. A record with
  // claim_token 0 is audited only.
  void record(const std::vector<AttemptRecord>& records, const std::vector<TenantEvent>& events = {});

  // Queues every desired row of sending tenants for a full resync (reconciler.resync_interval).
  // Returns the number of rows queued.
  std::size_t queue_resync();

  // --- Several instances: tenant leases (migrations/0003_tenant_leases.sql) ---------------
  struct OwnedTenant {
    std::string tenant_id;
    std::int64_t fencing_token = 0;
    bool acquired_now = false;  // not held before this heartbeat
    // acquired_now only: how long ago (by the database clock) each attempt of the last 61 s
    // that reached WeChat Pay was recorded, so the new owner's pacer counts the previous
    // owner's requests in its 1 s and 60 s windows.
    std::vector<std::chrono::milliseconds> recent_sends;
  };
  struct Ownership {
    std::vector<OwnedTenant> owned;  // every tenant this instance holds after the heartbeat
    int live_instances = 1;          // instances whose heartbeat is younger than the lease
    int fair_share = 0;              // ceil(tenants / live_instances)
    // Instances found dead on this machine (migrations/0005): their leases now lapse after
    // dead_owner_margin instead of the lease time.
    struct DeadInstance {
      std::string instance_id;
      long pid = 0;
      int tenants = 0;  // leases it held
    };
    std::vector<DeadInstance> dead_instances;
  };
  // One heartbeat, in one transaction: records this instance as alive, gives up the leases in
  // `release`, renews its other leases to now() + lease, and acquires free or lapsed tenants up
  // to its fair share. Never takes a lease another live instance holds. With
  // `dead_owner_margin`: first, an instance of the same kernel boot and PID namespace whose
  // process is gone (core/instance_liveness.h) has its leases cut to now() + the margin and is
  // forgotten, so its tenants are taken over on a heartbeat after that margin.
  Ownership heartbeat(std::chrono::milliseconds lease, const std::vector<std::string>& release,
                      std::optional<std::chrono::milliseconds> dead_owner_margin = std::nullopt);
  // Gives up every lease of this instance (clean shutdown), so another takes over at once.
  void release_all_tenants();

  // Counts for --exit-when-idle: entries of tenants in mode apply and not paused by error.
  std::size_t pending_for_sending_tenants();

  // Settles claimed entries that need no attempt (reconcile::judge_work_item said drop, e.g.
  // an in-sync row queued without resync): deletes each entry that still carries the item's
  // claim_token and revision; no audit row, because nothing was attempted. Empty: no-op.
  void drop(const std::vector<WorkItem>& items);

  // For metrics: per tenant, the pending_work entries and the age (database clock) of the
  // oldest queued real change (resync entries excluded); tenants without entries are absent.
  // One cheap statement, "queue_ages", declared on first use.
  struct TenantQueue {
    std::string tenant_id;
    long long queued = 0;
    std::optional<std::chrono::milliseconds> oldest_pending_change;
  };
  std::vector<TenantQueue> queue_ages();

  // Statements sent to the server by this store since construction (record() sends exactly
  // one per batch); for tests and metrics.
  std::uint64_t statements_executed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// LISTEN callbackd_desired and callbackd_tenants on a connection of its own, waited on by a
// thread of its own, so that a wake-up never queues behind a claim or a batch write.
class Listener {
 public:
  struct Notification {
    std::string channel;    // "callbackd_desired" or "callbackd_tenants"
    std::string tenant_id;  // the payload
  };
  explicit Listener(const DatabaseConfig& db);  // connects and LISTENs; throws DatabaseError
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  // Waits up to `timeout` for notifications and returns those received (possibly none).
  // Throws DatabaseError when the connection is lost (the caller reconnects with backoff).
  std::vector<Notification> wait(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd::pg
