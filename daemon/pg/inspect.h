// Read-only views of the reconciler's state for `callbackd plan` and `callbackd status`.
// Everything is read in ONE read-only REPEATABLE READ transaction opened by the constructor, so
// a report is one consistent snapshot, and nothing here can claim, lock or write (PostgreSQL
// refuses writes in a READ ONLY transaction). Std types only; libpqxx stays in inspect.cpp.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/tenant.h"
#include "pg/reconcile_store.h"

namespace callbackd::pg {

struct TenantOverview {
  TenantRow tenant;
  std::optional<reconcile::StoredTenantPause> pause;  // tenant_state, when paused by the daemon
};

// One pending_work entry as `run` would see it when claiming (WorkItem, claim_token 0).
struct QueuedEntry {
  reconcile::WorkItem item;
  std::chrono::milliseconds due_in{0};    // 0 when due now
  std::optional<std::string> claimed_by;  // an unexpired claim: in flight at that instance
  // The tenant's allowed_notify_hosts (the same on every entry of a tenant; nullopt: any host).
  std::optional<desired::AllowedHosts> allowed_hosts;
  // Held by the change budget (0008): never claimed until approved; due_in means nothing then.
  std::optional<std::string> held_reason;
};

struct TenantStatus {
  std::string tenant_id;
  TenantMode mode = TenantMode::apply;
  std::optional<reconcile::StoredTenantPause> pause;
  std::map<std::string, long long> by_state;  // sync_status.state -> rows
  struct ErrorCount {
    std::string state;       // retrying, failed or invalid
    std::string error_code;  // sync_status.last_error_code
    long long rows = 0;
  };
  std::vector<ErrorCount> by_error;  // most frequent first
  long long queued = 0;              // pending_work entries
  // now() - the oldest desired_callbacks.updated_at among queued entries that are real
  // changes (not resync); nullopt when there are none.
  std::optional<std::chrono::milliseconds> oldest_pending_change;
  // Rows held by the change budget, by applied and desired notify_url (sync_status `held`).
  std::vector<reconcile::HeldMove> held_moves;
  bool certificate_mode = false;  // migrations/0009
  std::vector<TenantRow::StoredCertificate> platform_certificates;
};

class Inspector {
 public:
  // Connects and opens the read-only snapshot. Throws DatabaseError.
  explicit Inspector(const DatabaseConfig& db);
  ~Inspector();
  Inspector(const Inspector&) = delete;
  Inspector& operator=(const Inspector&) = delete;

  // Every tenant with its daemon pause, by tenant_id.
  std::vector<TenantOverview> tenants();
  // Every queued entry of `tenant_id`, in the order `run` claims them (due_at, then mchid).
  // A callback rather than a vector: a tenant may have a large backlog.
  void for_each_queued(const std::string& tenant_id, const std::function<void(const QueuedEntry&)>& visit);
  // Per-tenant counts from callbackd.sync_status, every tenant (also those without rows).
  std::vector<TenantStatus> status();
  // `plan --refresh`: the desired rows with an applied value, of `tenant_id` (nullopt: all), by
  // tenant and mchid (sql/inspect_applied_rows.sql).
  struct AppliedRow {
    std::string tenant_id;
    std::string sub_mchid;
    std::string applied_notify_url;
  };
  std::vector<AppliedRow> applied_rows(const std::optional<std::string>& tenant_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One tenant of the progress table as the database has it (sql/progress_counts.sql).
struct TenantProgressCounts {
  std::string tenant_id;
  TenantMode mode = TenantMode::apply;
  int rate_per_minute = 0;
  std::optional<std::string> pause_error_code;  // set ("" without a code) while paused by the daemon
  std::map<std::string, long long> by_state;    // sync_status.state -> rows
  long long sent_last_minute = 0;               // audit rows of requests sent in the last minute
};

// The progress table's numbers (`status --watch`; `run` at start and exit): one connection,
// and per read() ONE statement in its own read-only transaction, so that every refresh sees the
// latest commits. Throws DatabaseError.
class ProgressReader {
 public:
  explicit ProgressReader(const DatabaseConfig& db);
  ~ProgressReader();
  ProgressReader(const ProgressReader&) = delete;
  ProgressReader& operator=(const ProgressReader&) = delete;

  // Every tenant, by tenant_id (also those without rows).
  std::vector<TenantProgressCounts> read();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd::pg
