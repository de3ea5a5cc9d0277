// The reconcile store: claims, batched records, tenant pauses and the LISTEN connection.
// Every statement is named and parameterised; every timestamp comes from now() in SQL, never
// from the daemon's clock (the daemon's clock is monotonic and means nothing to PostgreSQL).
//
// Single-statement operations run in a nontransaction: the statement is its own transaction
// (autocommit), so a claim or a whole record() batch costs one round trip and still commits or
// rolls back as a unit.
#include "pg/reconcile_store.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/instance_liveness.h"
#include "core/wechatpay/update_time.h"
#include "pg/connection.h"
#include "pg/conninfo.h"
#include "pg/migrator.h"
#include "pg/queue_rows.h"
#include "pg/tenants_query.h"

namespace callbackd::pg {

using reconcile::AttemptRecord;
using reconcile::ClaimResult;
using reconcile::TenantEvent;

namespace {

// One entry per claimed row; nextval() runs once per updated row, so every entry carries its
// own token and fencing is per entry. The UPDATE re-checks that the desired row it joins is
// at least the queued revision: SKIP LOCKED re-reads a just-changed queue entry at its newest
// version while the join reads desired_callbacks as of the statement's start, so without the
// check an entry could be claimed with older desired values. Such an entry is simply left for
// the next claim.
// next_due_in_ms looks at two index ranges, never the tenant's backlog: the first unclaimed
// entry due later (pending_work_tenant_due) and the first lease held by someone else that
// lapses (pending_work_tenant_lease, claimed entries only). Both read the snapshot before this
// claim, so this claim's own entries are not counted.
constexpr const char* kClaimDue = R"SQL(
WITH due AS (
  SELECT mchid FROM callbackd.pending_work
  WHERE tenant_id = $1 AND due_at <= now()
    AND (claim_token IS NULL OR lease_until < now()
         -- Holding the tenant's lease means no other instance sends for it any more (it stopped
         -- before its tenant lease could lapse), so its row claims are taken over at once.
         OR (claimed_by <> $3 AND EXISTS (SELECT 1 FROM callbackd.tenant_leases l
                                          WHERE l.tenant_id = $1 AND l.instance_id = $3)))
  ORDER BY due_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE callbackd.pending_work w
  SET claimed_by = $3,
      claim_token = nextval('callbackd.claim_token_seq'),
      lease_until = now() + $4::bigint * interval '1 millisecond'
  FROM due, callbackd.desired_callbacks d
  WHERE w.mchid = due.mchid AND d.mchid = w.mchid AND d.revision >= w.revision
  RETURNING w.mchid, w.tenant_id, w.claim_token, w.resync, w.due_at, d.notify_url, d.switch,
            d.revision AS desired_revision
), later AS (
  SELECT LEAST(
    (SELECT min(due_at) FROM callbackd.pending_work WHERE tenant_id = $1 AND due_at > now()),
    (SELECT min(lease_until) FROM callbackd.pending_work
      WHERE tenant_id = $1 AND claim_token IS NOT NULL AND lease_until >= now())
  ) AS at
)
SELECT c.mchid, c.tenant_id, c.claim_token, c.resync, c.notify_url, c.switch, c.desired_revision,
       s.state, s.revision AS state_revision, s.applied_notify_url, s.applied_switch,
       s.applied_revision, s.attempts,
       CASE WHEN later.at IS NULL THEN NULL
            ELSE GREATEST(0, ceil(extract(epoch FROM later.at - now()) * 1000))::bigint END AS next_due_in_ms
FROM later
LEFT JOIN claimed c ON true
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = c.mchid
ORDER BY c.due_at, c.mchid
)SQL";

// The whole batch in one statement ($1 attempts, $2 tenant events, both JSON arrays; $3 the
// instance). Data-modifying CTEs share one snapshot and one transaction, so either every audit
// row and state of the batch is written or none is.
//  - audit: every attempt, fenced or not (the attempt happened). ON CONFLICT on claim_token:
//    repeating a batch whose commit was in doubt inserts nothing twice.
//  - last_per_row: should one sub-merchant appear twice, its LAST record decides its state and
//    queue entry (two rows in one upsert would fail the whole batch); both are audited.
//  - fenced: the entries that still carry the record's claim_token, locked, so a concurrent
//    desired change (whose trigger clears the claim) either happened before (the record is
//    fenced out) or waits until this commits (and then re-queues the new revision).
//  - state: `pending` decisions (rate_limited, tenant_error) leave sub_merchant_state alone;
//    never written over a state about a newer revision.
//  - settled / kept: the entry is deleted only when the decision says so AND it still holds the
//    claimed revision; otherwise it is due again after the decision's delay, claim cleared.
constexpr const char* kRecord = R"SQL(
WITH batch AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS b(
    seq integer, tenant_id text, mchid text, revision bigint, claim_token bigint, notify_url text,
    switch boolean, outcome text, http_status integer, error_code text, error_message text,
    request_id text, latency_ms integer, attempt integer, update_time text, update_time_ms bigint,
    state text, remove boolean, delay_ms bigint, attempts integer)
), audit AS (
  INSERT INTO callbackd.audit_log (tenant_id, mchid, notify_url, switch, http_status, error_code,
    error_message, request_id, outcome, latency_ms, attempt, instance, desired_revision,
    update_time, claim_token)
  SELECT tenant_id, mchid, notify_url, switch, http_status, NULLIF(error_code, ''),
         NULLIF(error_message, ''), request_id, outcome, latency_ms, attempt, $3, revision,
         update_time, NULLIF(claim_token, 0)
  FROM batch ORDER BY seq
  ON CONFLICT (claim_token) WHERE claim_token IS NOT NULL DO NOTHING
  RETURNING 1
), events AS (
  INSERT INTO callbackd.audit_log (tenant_id, mchid, outcome, error_code, error_message, instance)
  SELECT tenant_id, NULL, outcome, NULLIF(error_code, ''), NULLIF(error_message, ''), $3
  FROM jsonb_to_recordset($2::jsonb) AS e(seq integer, tenant_id text, outcome text,
                                           error_code text, error_message text)
  ORDER BY seq
  RETURNING 1
), last_per_row AS (
  SELECT DISTINCT ON (mchid) * FROM batch ORDER BY mchid, seq DESC
), fenced AS (
  SELECT l.* FROM last_per_row l
  JOIN callbackd.pending_work w ON w.mchid = l.mchid AND w.claim_token = l.claim_token
  FOR UPDATE OF w
), state AS (
  INSERT INTO callbackd.sub_merchant_state AS s (mchid, tenant_id, revision, state,
    applied_notify_url, applied_switch, applied_revision, update_time, update_time_parsed,
    attempts, last_http_status, last_error_code, last_error_message, next_attempt_at, changed_at)
  SELECT mchid, tenant_id, revision, state,
         CASE WHEN state = 'in_sync' THEN notify_url END,
         CASE WHEN state = 'in_sync' THEN switch END,
         CASE WHEN state = 'in_sync' THEN revision END,
         CASE WHEN state = 'in_sync' THEN update_time END,
         CASE WHEN state = 'in_sync' THEN 'epoch'::timestamptz + update_time_ms * interval '1 millisecond' END,
         attempts, http_status,
         CASE WHEN state <> 'in_sync' THEN NULLIF(error_code, '') END,
         CASE WHEN state <> 'in_sync' THEN NULLIF(error_message, '') END,
         CASE WHEN state = 'retrying' THEN now() + delay_ms * interval '1 millisecond' END,
         now()
  FROM fenced WHERE state <> 'pending'
  ON CONFLICT (mchid) DO UPDATE SET
    tenant_id = EXCLUDED.tenant_id,
    revision = EXCLUDED.revision,
    state = EXCLUDED.state,
    applied_notify_url = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.applied_notify_url ELSE s.applied_notify_url END,
    applied_switch = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.applied_switch ELSE s.applied_switch END,
    applied_revision = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.applied_revision ELSE s.applied_revision END,
    update_time = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.update_time ELSE s.update_time END,
    update_time_parsed = CASE WHEN EXCLUDED.state = 'in_sync' THEN EXCLUDED.update_time_parsed ELSE s.update_time_parsed END,
    attempts = EXCLUDED.attempts,
    last_http_status = EXCLUDED.last_http_status,
    last_error_code = EXCLUDED.last_error_code,
    last_error_message = EXCLUDED.last_error_message,
    next_attempt_at = EXCLUDED.next_attempt_at,
    changed_at = now()
  WHERE s.revision <= EXCLUDED.revision
  RETURNING 1
), settled AS (
  DELETE FROM callbackd.pending_work w USING fenced f
  WHERE w.mchid = f.mchid AND w.claim_token = f.claim_token AND f.remove AND w.revision = f.revision
  RETURNING 1
), kept AS (
  UPDATE callbackd.pending_work w
  SET due_at = now() + f.delay_ms * interval '1 millisecond',
      claimed_by = NULL, claim_token = NULL, lease_until = NULL
  FROM fenced f
  WHERE w.mchid = f.mchid AND w.claim_token = f.claim_token AND NOT (f.remove AND w.revision = f.revision)
  RETURNING 1
)
SELECT (SELECT count(*) FROM audit) AS audited, (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM state) AS states, (SELECT count(*) FROM settled) AS settled,
       (SELECT count(*) FROM kept) AS kept
)SQL";

constexpr const char* kRelease = R"SQL(
UPDATE callbackd.pending_work SET claimed_by = NULL, claim_token = NULL, lease_until = NULL
WHERE claim_token = ANY ($1::bigint[])
)SQL";

constexpr const char* kDrop = R"SQL(
DELETE FROM callbackd.pending_work w
USING jsonb_to_recordset($1::jsonb) AS i(mchid text, claim_token bigint, revision bigint)
WHERE w.mchid = i.mchid AND w.claim_token = i.claim_token AND w.revision = i.revision
)SQL";

// A tenant deleted meanwhile is not resurrected (INSERT ... SELECT FROM tenants). paused_at
// keeps the start of the pause across the failed probes that re-pause it.
constexpr const char* kPauseTenant = R"SQL(
INSERT INTO callbackd.tenant_state AS ts (tenant_id, paused_reason, paused_at, next_probe_at, error_code, changed_at)
SELECT tenant_id, COALESCE(NULLIF($3, ''), NULLIF($2, ''), 'tenant error'), now(),
       now() + $4::bigint * interval '1 millisecond', NULLIF($2, ''), now()
FROM callbackd.tenants WHERE tenant_id = $1
ON CONFLICT (tenant_id) DO UPDATE SET
  paused_reason = EXCLUDED.paused_reason,
  paused_at = CASE WHEN ts.paused_reason IS NULL THEN EXCLUDED.paused_at ELSE ts.paused_at END,
  next_probe_at = EXCLUDED.next_probe_at,
  error_code = EXCLUDED.error_code,
  changed_at = now()
)SQL";

constexpr const char* kResumeTenant = R"SQL(
UPDATE callbackd.tenant_state
SET paused_reason = NULL, paused_at = NULL, next_probe_at = NULL, error_code = NULL, changed_at = now()
WHERE tenant_id = $1 AND paused_reason IS NOT NULL
)SQL";

constexpr const char* kTenantPauses = R"SQL(
SELECT tenant_id, COALESCE(error_code, '') AS error_code, paused_reason,
       CASE WHEN next_probe_at IS NULL THEN 0
            ELSE GREATEST(0, ceil(extract(epoch FROM next_probe_at - now()) * 1000))::bigint END AS probe_in_ms
FROM callbackd.tenant_state
WHERE paused_reason IS NOT NULL
ORDER BY tenant_id
)SQL";

// Rows parked as failed or invalid at their current revision are not re-queued: they wait for
// their desired row to change (reconcile/diff.h), a resync must not turn them into a re-send
// loop. Rows already queued keep their entry (they are sent anyway).
constexpr const char* kQueueResync = R"SQL(
INSERT INTO callbackd.pending_work (mchid, tenant_id, revision, due_at, resync)
SELECT d.mchid, d.tenant_id, d.revision, now(), true
FROM callbackd.desired_callbacks d
JOIN callbackd.tenants t ON t.tenant_id = d.tenant_id
LEFT JOIN callbackd.tenant_state ts ON ts.tenant_id = d.tenant_id
LEFT JOIN callbackd.sub_merchant_state s ON s.mchid = d.mchid
WHERE t.mode = 'apply' AND ts.paused_reason IS NULL
  AND NOT (s.state IN ('failed', 'invalid') AND s.revision >= d.revision)
ON CONFLICT (mchid) DO NOTHING
)SQL";

constexpr const char* kPendingForSendingTenants = R"SQL(
SELECT count(*) FROM callbackd.pending_work w
JOIN callbackd.tenants t ON t.tenant_id = w.tenant_id
WHERE t.mode = 'apply'
  AND NOT EXISTS (SELECT 1 FROM callbackd.tenant_state ts
                  WHERE ts.tenant_id = w.tenant_id AND ts.paused_reason IS NOT NULL)
)SQL";

constexpr const char* kHeartbeatInstance = R"SQL(
INSERT INTO callbackd.instances (instance_id, boot_id, pid_namespace, pid)
VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), NULLIF($4::integer, 0))
ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()
)SQL";

// Other instances in our kernel boot and PID namespace whose leases may not have lapsed yet
// (heartbeat younger than the lease): the candidates for a takeover (0005).
constexpr const char* kSameMachineInstances = R"SQL(
SELECT instance_id, pid FROM callbackd.instances
WHERE instance_id <> $1 AND boot_id = $2 AND pid_namespace = $3 AND pid IS NOT NULL
  AND heartbeat_at > now() - $4::bigint * interval '1 millisecond'
ORDER BY instance_id
)SQL";

// A provably dead instance: its leases lapse after `margin` rather than the lease time, and it
// is no longer counted as live. Returns how many tenant leases it held.
constexpr const char* kTakeOverDeadInstance = R"SQL(
WITH shortened AS (
  UPDATE callbackd.tenant_leases
  SET lease_until = LEAST(lease_until, now() + $2::bigint * interval '1 millisecond')
  WHERE instance_id = $1
  RETURNING tenant_id
), forgotten AS (
  DELETE FROM callbackd.instances WHERE instance_id = $1
)
SELECT count(*)::int FROM shortened
)SQL";

constexpr const char* kReleaseTenant = R"SQL(
DELETE FROM callbackd.tenant_leases WHERE instance_id = $1 AND tenant_id = $2
)SQL";

constexpr const char* kReleaseAllTenants = R"SQL(
DELETE FROM callbackd.tenant_leases WHERE instance_id = $1
)SQL";

constexpr const char* kRenewTenants = R"SQL(
UPDATE callbackd.tenant_leases SET lease_until = now() + $2::bigint * interval '1 millisecond'
WHERE instance_id = $1
RETURNING tenant_id, fencing_token
)SQL";

constexpr const char* kLiveInstances = R"SQL(
SELECT (SELECT count(*) FROM callbackd.instances
         WHERE heartbeat_at > now() - $1::bigint * interval '1 millisecond')::int,
       (SELECT count(*) FROM callbackd.tenants)::int
)SQL";

// A free tenant has no lease or a lapsed one. ON CONFLICT ... WHERE lapsed makes two
// instances racing for one tenant safe: the loser's upsert matches nothing.
constexpr const char* kAcquireTenants = R"SQL(
INSERT INTO callbackd.tenant_leases AS l (tenant_id, instance_id, lease_until)
SELECT t.tenant_id, $1, now() + $2::bigint * interval '1 millisecond'
FROM callbackd.tenants t
LEFT JOIN callbackd.tenant_leases h ON h.tenant_id = t.tenant_id
WHERE h.tenant_id IS NULL OR h.lease_until < now()
ORDER BY t.tenant_id
LIMIT $3
ON CONFLICT (tenant_id) DO UPDATE
  SET instance_id = EXCLUDED.instance_id, lease_until = EXCLUDED.lease_until,
      fencing_token = nextval('callbackd.tenant_lease_seq'), acquired_at = now()
  WHERE l.lease_until < now()
RETURNING tenant_id, fencing_token
)SQL";

constexpr const char* kRecentSends = R"SQL(
SELECT ceil(extract(epoch FROM now() - created_at) * 1000)::bigint
FROM callbackd.audit_log
WHERE tenant_id = $1 AND created_at > now() - interval '61 seconds' AND latency_ms IS NOT NULL
ORDER BY created_at
)SQL";

constexpr const char* kForgetInstances = R"SQL(
DELETE FROM callbackd.instances WHERE heartbeat_at < now() - interval '1 day'
)SQL";

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// SQLSTATE classes that mean the session is gone: 08 connection exception, 57P01-57P03
// (admin shutdown, crash shutdown, cannot connect now).
bool session_lost(const std::string& sqlstate) {
  return sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

long long millis(std::chrono::milliseconds d) { return static_cast<long long>(d.count()); }

nlohmann::json json_or_null(const std::optional<std::string>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
nlohmann::json json_or_null(const std::optional<int>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
nlohmann::json json_or_null(const std::optional<bool>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

}  // namespace

// ---------------------------------------------------------------------------------------
struct ReconcileStore::Impl {
  DatabaseConfig db;
  std::string instance;
  ProcessIdentity self = this_process();  // recorded with the heartbeat (0005)
  std::string where;  // describe_conninfo: never a password
  std::unique_ptr<pqxx::connection> conn;
  bool broken = true;
  std::uint64_t statements = 0;

  void connect() {
    conn.reset();
    broken = true;
    auto c = open_connection(db, "callbackd");
    try {
      // libpqxx prepares lazily, on first use; declaring costs no round trip.
      prepare_tenant_statements(*c);
      c->prepare("claim_due", kClaimDue);
      c->prepare("record_batch", kRecord);
      c->prepare("release_claims", kRelease);
      c->prepare("drop_entries", kDrop);
      c->prepare("pause_tenant", kPauseTenant);
      c->prepare("resume_tenant", kResumeTenant);
      c->prepare("tenant_pauses", kTenantPauses);
      c->prepare("queue_resync", kQueueResync);
      c->prepare("pending_for_sending_tenants", kPendingForSendingTenants);
      c->prepare("heartbeat_instance", kHeartbeatInstance);
      c->prepare("same_machine_instances", kSameMachineInstances);
      c->prepare("take_over_dead_instance", kTakeOverDeadInstance);
      c->prepare("release_tenant", kReleaseTenant);
      c->prepare("release_all_tenants", kReleaseAllTenants);
      c->prepare("renew_tenants", kRenewTenants);
      c->prepare("live_instances", kLiveInstances);
      c->prepare("acquire_tenants", kAcquireTenants);
      c->prepare("recent_sends", kRecentSends);
      c->prepare("forget_instances", kForgetInstances);
      // Registered with the server now rather than on first use: a database without the
      // schema this binary needs fails here, at start-up, and record() is one round trip
      // from its first call on.
      for (const char* name : {"claim_due", "record_batch", "release_claims", "drop_entries", "pause_tenant",
                               "resume_tenant", "tenant_pauses", "queue_resync", "pending_for_sending_tenants",
                               "heartbeat_instance", "same_machine_instances", "take_over_dead_instance",
                               "release_tenant", "release_all_tenants", "renew_tenants",
                               "live_instances", "acquire_tenants", "recent_sends", "forget_instances"})
        c->prepare_now(name);
    } catch (const pqxx::broken_connection& e) {
      throw DatabaseError("lost the connection to PostgreSQL at " + where + " while preparing statements: " +
                          trimmed(e.what()));
    } catch (const pqxx::failure& e) {
      throw DatabaseError("cannot prepare statements on PostgreSQL at " + where + ": " + trimmed(e.what()) +
                          " (has `callbackd migrate` been run?)");
    }
    conn = std::move(c);
    broken = false;
  }

  // Runs `f` on the connection and turns libpqxx's exceptions into DatabaseError naming
  // `what` and the server. After a lost session the store refuses work until reconnect():
  // libpqxx 6 would otherwise reconnect silently on the next call, and the caller must learn
  // that claims and in-flight statements of the old session are gone.
  template <class F>
  auto run(const char* what, F&& f) {
    if (!conn || broken)
      throw DatabaseError(std::string(what) + ": not connected to PostgreSQL at " + where +
                          " (the connection was lost; reconnect() first)");
    try {
      return f(*conn);
    } catch (const pqxx::broken_connection& e) {
      broken = true;
      throw DatabaseError(std::string(what) + ": lost the connection to PostgreSQL at " + where + ": " +
                          trimmed(e.what()));
    } catch (const pqxx::in_doubt_error& e) {
      broken = true;
      throw DatabaseError(std::string(what) + ": connection to PostgreSQL at " + where +
                          " lost while committing; the outcome is unknown: " + trimmed(e.what()));
    } catch (const pqxx::sql_error& e) {
      if (session_lost(e.sqlstate()) || !conn->is_open()) broken = true;
      throw DatabaseError(std::string(what) + " failed on PostgreSQL at " + where + ": " + trimmed(e.what()) +
                          " (SQLSTATE " + e.sqlstate() + ")");
    } catch (const pqxx::failure& e) {
      if (!conn->is_open()) broken = true;
      throw DatabaseError(std::string(what) + " failed on PostgreSQL at " + where + ": " + trimmed(e.what()));
    }
  }

  // One statement, autocommit: its own transaction, one round trip.
  template <class... Args>
  pqxx::result exec1(pqxx::connection& c, const char* name, Args&&... args) {
    pqxx::nontransaction tx(c);
    ++statements;
    return tx.exec_prepared(name, std::forward<Args>(args)...);
  }
};

ReconcileStore::ReconcileStore(const DatabaseConfig& db, std::string instance) : impl_(std::make_unique<Impl>()) {
  impl_->db = db;
  impl_->instance = std::move(instance);
  impl_->where = describe_conninfo(db.url);
  impl_->connect();
}

ReconcileStore::~ReconcileStore() = default;

void ReconcileStore::reconnect() { impl_->connect(); }

bool ReconcileStore::connected() const { return impl_->conn && !impl_->broken && impl_->conn->is_open(); }

std::uint64_t ReconcileStore::statements_executed() const { return impl_->statements; }

std::vector<TenantRow> ReconcileStore::tenants() {
  return impl_->run("reading callbackd.tenants", [&](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    impl_->statements += 2;
    return read_tenants(tx);
  });
}

std::map<std::string, reconcile::StoredTenantPause> ReconcileStore::tenant_pauses() {
  return impl_->run("reading callbackd.tenant_state", [&](pqxx::connection& c) {
    std::map<std::string, reconcile::StoredTenantPause> pauses;
    for (const auto& r : impl_->exec1(c, "tenant_pauses")) {
      reconcile::StoredTenantPause p;
      p.error_code = r["error_code"].as<std::string>();
      p.reason = r["paused_reason"].as<std::string>();
      p.probe_in = std::chrono::milliseconds{r["probe_in_ms"].as<long long>()};
      pauses.emplace(r["tenant_id"].as<std::string>(), std::move(p));
    }
    return pauses;
  });
}

void ReconcileStore::pause_tenant(const std::string& tenant_id, const std::string& error_code,
                                  const std::string& reason, std::chrono::milliseconds probe_in) {
  impl_->run("pausing a tenant in callbackd.tenant_state", [&](pqxx::connection& c) {
    impl_->exec1(c, "pause_tenant", tenant_id, error_code, reason, millis(probe_in));
  });
}

void ReconcileStore::resume_tenant(const std::string& tenant_id) {
  impl_->run("resuming a tenant in callbackd.tenant_state",
             [&](pqxx::connection& c) { impl_->exec1(c, "resume_tenant", tenant_id); });
}

std::vector<ClaimResult> ReconcileStore::claim_due(const std::vector<reconcile::ClaimRequest>& requests,
                                                  std::chrono::milliseconds lease) {
  std::vector<ClaimResult> results;
  results.reserve(requests.size());
  for (const auto& r : requests) results.push_back(claim_due(r.tenant_id, r.limit, lease));
  return results;
}

ClaimResult ReconcileStore::claim_due(const std::string& tenant_id, int limit, std::chrono::milliseconds lease) {
  CALLBACKD_ASSERT(limit >= 0);
  CALLBACKD_ASSERT(lease.count() > 0);
  return impl_->run("claiming due entries of callbackd.pending_work", [&](pqxx::connection& c) {
    ClaimResult result;
    result.tenant_id = tenant_id;
    const pqxx::result rows = impl_->exec1(c, "claim_due", tenant_id, limit, impl_->instance, millis(lease));
    for (const auto& r : rows) {
      if (!r["next_due_in_ms"].is_null() && !result.next_due_in)
        result.next_due_in = std::chrono::milliseconds{r["next_due_in_ms"].as<long long>()};
      if (r["mchid"].is_null()) continue;  // the one row that only carries next_due_in_ms
      WorkItem item = work_item_from(r);
      item.claim_token = r["claim_token"].as<std::int64_t>();
      result.items.push_back(std::move(item));
    }
    return result;
  });
}

void ReconcileStore::release(const std::vector<std::int64_t>& claim_tokens) {
  if (claim_tokens.empty()) return;
  // A bigint[] literal: digits and commas only, passed as a parameter, never spliced into SQL.
  std::string array = "{";
  for (std::size_t i = 0; i < claim_tokens.size(); ++i) {
    if (i) array += ',';
    array += std::to_string(claim_tokens[i]);
  }
  array += '}';
  impl_->run("releasing claims in callbackd.pending_work",
             [&](pqxx::connection& c) { impl_->exec1(c, "release_claims", array); });
}

void ReconcileStore::drop(const std::vector<WorkItem>& items) {
  if (items.empty()) return;
  nlohmann::json batch = nlohmann::json::array();
  for (const auto& item : items)
    batch.push_back({{"mchid", item.sub_mchid}, {"claim_token", item.claim_token}, {"revision", item.desired.revision}});
  impl_->run("dropping settled entries of callbackd.pending_work",
             [&](pqxx::connection& c) { impl_->exec1(c, "drop_entries", batch.dump()); });
}

void ReconcileStore::record(const std::vector<AttemptRecord>& records, const std::vector<TenantEvent>& events) {
  if (records.empty() && events.empty()) return;
  nlohmann::json batch = nlohmann::json::array();
  int seq = 0;
  for (const auto& rec : records) {
    // Parsed here, by the same parser as everywhere else, so that a malformed update_time is
    // stored verbatim with a NULL parsed copy instead of failing the batch in a SQL cast.
    nlohmann::json update_time_ms;
    if (rec.update_time) {
      if (auto t = wechatpay::parse_update_time(*rec.update_time)) update_time_ms = t->time_since_epoch().count();
    }
    const auto delay = std::chrono::ceil<std::chrono::milliseconds>(rec.decision.delay);
    batch.push_back({
        {"seq", seq++},
        {"tenant_id", rec.tenant_id},
        {"mchid", rec.sub_mchid},
        {"revision", rec.revision},
        {"claim_token", rec.claim_token},
        {"notify_url", json_or_null(rec.notify_url)},
        {"switch", json_or_null(rec.push_switch)},
        {"outcome", rec.outcome},
        {"http_status", json_or_null(rec.http_status)},
        {"error_code", rec.error_code},
        {"error_message", rec.error_message},
        {"request_id", json_or_null(rec.request_id)},
        {"latency_ms", json_or_null(rec.latency_ms)},
        {"attempt", rec.attempt},
        {"update_time", json_or_null(rec.update_time)},
        {"update_time_ms", update_time_ms},
        {"state", std::string(reconcile::row_state_name(rec.decision.state))},
        {"remove", rec.decision.remove_from_queue},
        {"delay_ms", static_cast<long long>(std::max<long long>(0, delay.count()))},
        {"attempts", rec.decision.attempts},
    });
  }
  nlohmann::json tenant_events = nlohmann::json::array();
  seq = 0;
  for (const auto& e : events) {
    tenant_events.push_back({{"seq", seq++},
                             {"tenant_id", e.tenant_id},
                             {"outcome", e.outcome},
                             {"error_code", e.error_code},
                             {"error_message", e.error_message}});
  }
  // dump() with the replace handler: bytes from the network that are not UTF-8 (an error
  // message, a Request-ID) must not make the batch unserialisable.
  const std::string attempts_json = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string events_json = tenant_events.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  impl_->run("recording attempts in callbackd.audit_log and sub_merchant_state", [&](pqxx::connection& c) {
    impl_->exec1(c, "record_batch", attempts_json, events_json, impl_->instance);
  });
}

std::size_t ReconcileStore::queue_resync() {
  return impl_->run("queueing a full resync in callbackd.pending_work", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    ++impl_->statements;
    return static_cast<std::size_t>(tx.exec_prepared("queue_resync").affected_rows());
  });
}

std::size_t ReconcileStore::pending_for_sending_tenants() {
  return impl_->run("counting callbackd.pending_work", [&](pqxx::connection& c) {
    return static_cast<std::size_t>(impl_->exec1(c, "pending_for_sending_tenants")[0][0].as<long long>());
  });
}

reconcile::Ownership ReconcileStore::heartbeat(std::chrono::milliseconds lease,
                                                    const std::vector<std::string>& release,
                                                    std::optional<std::chrono::milliseconds> dead_owner_margin) {
  return impl_->run("heartbeat (callbackd.tenant_leases)", [&](pqxx::connection& c) {
    reconcile::Ownership o;
    pqxx::work tx(c);
    impl_->statements += 4;
    const ProcessIdentity& self = impl_->self;
    tx.exec_prepared0("heartbeat_instance", impl_->instance, self.boot_id, self.pid_namespace, self.pid);
    if (dead_owner_margin && !self.boot_id.empty() && !self.pid_namespace.empty()) {
      // Before counting live instances and acquiring: a dead one neither counts nor holds.
      ++impl_->statements;
      for (const auto& r : tx.exec_prepared("same_machine_instances", impl_->instance, self.boot_id,
                                            self.pid_namespace, millis(lease))) {
        const ProcessIdentity other{self.boot_id, self.pid_namespace, r[1].as<long>()};
        if (!provably_dead(self, other, probe_pid(other.pid))) continue;
        ++impl_->statements;
        const auto held = tx.exec_prepared1("take_over_dead_instance", r[0].as<std::string>(),
                                            millis(*dead_owner_margin));
        o.dead_instances.push_back({r[0].as<std::string>(), other.pid, held[0].as<int>()});
      }
    }
    for (const auto& tenant_id : release) {
      ++impl_->statements;
      tx.exec_prepared0("release_tenant", impl_->instance, tenant_id);
    }
    for (const auto& r : tx.exec_prepared("renew_tenants", impl_->instance, millis(lease)))
      o.owned.push_back({r[0].as<std::string>(), r[1].as<std::int64_t>(), false, {}});
    const auto counts = tx.exec_prepared1("live_instances", millis(lease));
    o.live_instances = std::max(1, counts[0].as<int>());
    const int tenants = counts[1].as<int>();
    o.fair_share = (tenants + o.live_instances - 1) / o.live_instances;
    const int wanted = o.fair_share - static_cast<int>(o.owned.size());
    if (wanted > 0) {
      ++impl_->statements;
      for (const auto& r : tx.exec_prepared("acquire_tenants", impl_->instance, millis(lease), wanted)) {
        reconcile::OwnedTenant t{r[0].as<std::string>(), r[1].as<std::int64_t>(), true, {}};
        ++impl_->statements;
        for (const auto& age : tx.exec_prepared("recent_sends", t.tenant_id))
          t.recent_sends.emplace_back(age[0].as<long long>());
        o.owned.push_back(std::move(t));
      }
    }
    tx.exec_prepared0("forget_instances");
    tx.commit();
    return o;
  });
}

void ReconcileStore::release_all_tenants() {
  impl_->run("releasing tenant leases", [&](pqxx::connection& c) { impl_->exec1(c, "release_all_tenants", impl_->instance); });
}

// Metrics (app/operations.cpp), every few seconds: one grouped scan of pending_work.

std::vector<reconcile::TenantQueue> ReconcileStore::queue_ages() {
  return impl_->run("reading queue sizes from callbackd.pending_work", [&](pqxx::connection& c) {
    c.prepare("queue_ages", kQueueAges);  // re-declaring the same text is a no-op in libpqxx 6
    std::vector<reconcile::TenantQueue> out;
    for (const auto& r : impl_->exec1(c, "queue_ages")) {
      reconcile::TenantQueue q;
      q.tenant_id = r["tenant_id"].as<std::string>();
      q.queued = r["queued"].as<long long>();
      if (!r["oldest_ms"].is_null()) q.oldest_pending_change = std::chrono::milliseconds{r["oldest_ms"].as<long long>()};
      out.push_back(std::move(q));
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------
namespace {

// One receiver per channel; libpqxx LISTENs when it is constructed.
class ChannelReceiver final : public pqxx::notification_receiver {
 public:
  ChannelReceiver(pqxx::connection_base& c, const std::string& channel, std::vector<Listener::Notification>& sink)
      : pqxx::notification_receiver(c, channel), sink_(sink) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    sink_.push_back({channel(), payload});
  }

 private:
  std::vector<Listener::Notification>& sink_;
};

}  // namespace

struct Listener::Impl {
  std::string where;
  std::unique_ptr<pqxx::connection> conn;
  std::vector<Notification> received;
  std::vector<std::unique_ptr<ChannelReceiver>> receivers;
  bool broken = false;
};

Listener::Listener(const DatabaseConfig& db) : impl_(std::make_unique<Impl>()) {
  impl_->where = describe_conninfo(db.url);
  impl_->conn = open_connection(db, "callbackd-listen");
  try {
    for (const char* channel : {"callbackd_desired", "callbackd_tenants"})
      impl_->receivers.push_back(std::make_unique<ChannelReceiver>(*impl_->conn, channel, impl_->received));
  } catch (const pqxx::failure& e) {
    throw DatabaseError("cannot LISTEN on PostgreSQL at " + impl_->where + ": " + trimmed(e.what()));
  }
}

Listener::~Listener() {
  // Receivers unregister (UNLISTEN) while the connection still exists; on a broken connection
  // that may fail, which must not escape a destructor.
  try {
    impl_->receivers.clear();
  } catch (...) {
  }
}

std::vector<Listener::Notification> Listener::wait(std::chrono::milliseconds timeout) {
  if (impl_->broken)
    throw DatabaseError("LISTEN connection to PostgreSQL at " + impl_->where + " was lost; create a new Listener");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  try {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
      const long long us = std::max<long long>(0, left.count());
      impl_->conn->await_notification(static_cast<long>(us / 1'000'000), static_cast<long>(us % 1'000'000));
      // A closed socket wakes await_notification at once without notifications; libpq
      // notices the loss only on the next read, so check explicitly rather than spin.
      if (!impl_->conn->is_open()) throw pqxx::broken_connection("the server closed the connection");
      if (!impl_->received.empty() || us == 0 || std::chrono::steady_clock::now() >= deadline) break;
    }
  } catch (const pqxx::failure& e) {
    impl_->broken = true;
    throw DatabaseError("lost the LISTEN connection to PostgreSQL at " + impl_->where + ": " + trimmed(e.what()));
  }
  std::vector<Notification> out;
  out.swap(impl_->received);
  return out;
}

}  // namespace callbackd::pg
