// ReconcileStore::read_status: the status page's reads (core/status/page.h), the
// sql/status_*.sql statements plus queue-independent ones, in ONE read-only REPEATABLE READ
// transaction, so one page is one consistent snapshot and cannot write (PostgreSQL refuses
// writes in a READ ONLY transaction). Every list is bounded by a LIMIT; each query is served
// by an index (migrations/0001, 0010) except the grouped scans, which the page reuses for a
// while (status::scans_reused_for) and which may be left out (status::Query::scans).
#include <nlohmann/json.hpp>

#include "pg/queue_rows.h"
#include "pg/store_session.h"

namespace callbackd::pg {

namespace {

using Snapshot = pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only>;

std::optional<std::string> text_or_null(const pqxx::field& f) { return optional_field<std::string>(f); }

// Runs `read` in a savepoint under the transaction's statement_timeout (kScanTimeoutMs, set
// by read_status): false when PostgreSQL cancelled it for taking longer, and the snapshot
// goes on without it. Any other error is the caller's.
template <class Read>
bool within_budget(Snapshot& tx, Read&& read) {
  // A plain SAVEPOINT in the same transaction (libpqxx 6.4's subtransaction left the outer
  // transaction aborted after a cancelled statement here).
  tx.exec0("SAVEPOINT status_scan");
  try {
    read(tx);
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() != "57014") throw;  // query_canceled: the timeout
    tx.exec0("ROLLBACK TO SAVEPOINT status_scan");
    return false;
  }
  tx.exec0("RELEASE SAVEPOINT status_scan");
  return true;
}

// Every tenant (or the one), and with `scans` their rows by state and queue.
std::vector<status::TenantRows> read_tenants(Snapshot& tx, const std::optional<std::string>& tenant, bool scans,
                                             bool& counts_skipped) {
  std::vector<status::TenantRows> out;
  std::map<std::string, std::size_t> index;
  for (const auto& r : tx.exec_prepared("status_tenants", tenant)) {
    status::TenantRows t;
    t.tenant_id = r["tenant_id"].as<std::string>();
    t.mode = r["mode"].as<std::string>();
    t.rate_per_minute = r["rate_per_minute"].as<int>();
    t.paused_reason = text_or_null(r["paused_reason"]);
    t.paused_error_code = text_or_null(r["paused_error_code"]);
    t.shares = r["shares"].as<int>();
    if (!r["holders"].is_null())
      for (const auto& h : nlohmann::json::parse(r["holders"].c_str())) {
        status::TenantRows::Holder holder;
        holder.instance = h["instance"].get<std::string>();
        holder.shares = h["shares"].get<int>();
        holder.rate_per_minute = h["rate"].get<int>();
        if (h["left_ms"].is_number()) holder.lease_left_ms = h["left_ms"].get<long long>();
        t.holders.push_back(std::move(holder));
      }
    index[t.tenant_id] = out.size();
    out.push_back(std::move(t));
  }
  if (!scans) return out;
  counts_skipped = !within_budget(tx, [&](pqxx::transaction_base& sub) {
    for (const auto& r : sub.exec_prepared("status_state_counts", tenant))
      if (const auto it = index.find(r["tenant_id"].as<std::string>()); it != index.end())
        out[it->second].by_state[r["state"].as<std::string>()] = r["n"].as<long long>();
  });
  // The queue as the metrics read it (sql/queue_ages.sql), but in this snapshot: the page's
  // numbers agree with each other.
  const bool queue_read = within_budget(tx, [&](pqxx::transaction_base& sub) {
    for (const auto& r : sub.exec_prepared("queue_ages"))
      if (const auto it = index.find(r["tenant_id"].as<std::string>()); it != index.end()) {
        out[it->second].queued = r["queued"].as<long long>();
        out[it->second].oldest_change_ms = optional_field<long long>(r["oldest_ms"]);
      }
  });
  counts_skipped = counts_skipped || !queue_read;
  return out;
}

std::vector<status::ErrorGroup> error_groups(const pqxx::result& rows) {
  std::vector<status::ErrorGroup> out;
  for (const auto& r : rows) {
    status::ErrorGroup g;
    g.tenant_id = r["tenant_id"].as<std::string>();
    g.state = r["state"].as<std::string>();
    g.error_code = r["last_error_code"].as<std::string>();
    g.rows = r["n"].as<long long>();
    // JSON, not PostgreSQL's array text: an mchid is arbitrary text (quotes, commas, braces).
    for (const auto& id : nlohmann::json::parse(r["sample_mchids"].as<std::string>()))
      g.sample_mchids.push_back(id.get<std::string>());
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<status::ErrorGroup> read_errors(Snapshot& tx, const std::optional<std::string>& tenant, bool& skipped) {
  std::vector<status::ErrorGroup> out;
  skipped = !within_budget(tx, [&](pqxx::transaction_base& sub) {
    out = error_groups(sub.exec_prepared("status_error_groups", tenant, status::kSampleMchids, status::kErrorGroups));
  });
  return out;
}

std::vector<status::InvalidRow> invalid_rows(const pqxx::result& rows) {
  std::vector<status::InvalidRow> out;
  for (const auto& r : rows)
    out.push_back({r["mchid_shown"].as<std::string>(), r["tenant_id"].as<std::string>(),
                   text_or_null(r["last_error_code"]).value_or(""), text_or_null(r["last_error_message"]).value_or(""),
                   text_or_null(r["notify_url"]), r["changed_text"].as<std::string>()});
  return out;
}

std::vector<status::AuditRow> audit_rows(const pqxx::result& rows) {
  std::vector<status::AuditRow> out;
  for (const auto& r : rows) {
    status::AuditRow a;
    a.id = r["id"].as<long long>();
    a.created_at = r["created_text"].as<std::string>();
    a.tenant_id = r["tenant_id"].as<std::string>();
    a.mchid = text_or_null(r["mchid_shown"]);
    a.outcome = r["outcome"].as<std::string>();
    a.http_status = optional_field<int>(r["http_status"]);
    a.error_code = text_or_null(r["error_code"]);
    a.error_message = text_or_null(r["error_message"]);
    a.notify_url = text_or_null(r["notify_url"]);
    a.switch_on = optional_field<bool>(r["switch"]);
    a.instance = text_or_null(r["instance"]);
    out.push_back(std::move(a));
  }
  return out;
}

std::optional<status::SubMerchantRow> read_sub_merchant(Snapshot& tx, const std::string& mchid) {
  const auto rows = tx.exec_prepared("status_sub_merchant", mchid);
  if (rows.empty()) return std::nullopt;
  const auto& r = rows[0];
  status::SubMerchantRow s;
  s.mchid = r["mchid"].as<std::string>();
  s.tenant_id = r["tenant_id"].as<std::string>();
  s.state = r["state"].as<std::string>();
  s.desired_notify_url = text_or_null(r["desired_notify_url"]);
  s.desired_switch = optional_field<bool>(r["desired_switch"]);
  s.desired_updated_at = r["desired_updated_at"].as<std::string>();
  s.applied_notify_url = text_or_null(r["applied_notify_url"]);
  s.applied_switch = optional_field<bool>(r["applied_switch"]);
  s.update_time = text_or_null(r["update_time"]);
  s.attempts = optional_field<int>(r["attempts"]).value_or(0);
  s.last_http_status = optional_field<int>(r["last_http_status"]);
  s.last_error_code = text_or_null(r["last_error_code"]);
  s.last_error_message = text_or_null(r["last_error_message"]);
  s.next_attempt_at = text_or_null(r["next_attempt_at"]);
  s.tenant_paused_reason = text_or_null(r["tenant_paused_reason"]);
  s.queued = r["queued"].as<bool>();
  s.live_notify_url = text_or_null(r["live_notify_url"]);
  s.live_read_at = text_or_null(r["live_read_at"]);
  return s;
}

}  // namespace

status::DatabaseView ReconcileStore::read_status(const status::Query& query) {
  return impl_->run("reading the status page", [&](pqxx::connection& c) {
    Snapshot tx(c);
    // The page has a connection and thread of its own (app/run_command.cpp): a scan that runs
    // long delays only the page, until kScanTimeoutMs; the bounded reads take milliseconds.
    tx.exec0("SET LOCAL statement_timeout = " + std::to_string(status::kScanTimeoutMs));
    ++impl_->statements;
    status::DatabaseView v;
    const bool scans = query.scans && query.page != status::PageKind::sub_merchant;
    const auto started = std::chrono::steady_clock::now();
    // The scans of the tenants' pages: rows by state, the queue, the error groups.
    auto tenants_and_scans = [&](const std::optional<std::string>& tenant) {
      v.tenants = read_tenants(tx, tenant, scans, v.counts_skipped);
      if (scans && !v.tenants.empty()) v.errors = read_errors(tx, tenant, v.errors_skipped);
      if (scans)
        v.scans_took_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
      impl_->statements += 1 + (scans ? (v.tenants.empty() ? 2 : 3) : 0);
    };
    switch (query.page) {
      case status::PageKind::overview:
        tenants_and_scans(std::nullopt);
        v.invalid = invalid_rows(tx.exec_prepared("status_invalid_latest", status::kInvalidRows));
        v.audit = audit_rows(tx.exec_prepared("status_audit_latest", status::kAuditRows));
        impl_->statements += 2;
        break;
      case status::PageKind::tenant:
        tenants_and_scans(query.argument);
        if (v.tenants.empty()) break;  // no such tenant: the page says so
        v.invalid = invalid_rows(tx.exec_prepared("status_invalid_tenant", query.argument, status::kInvalidRows));
        v.audit = audit_rows(tx.exec_prepared("status_audit_tenant", query.argument, status::kAuditRows));
        impl_->statements += 2;
        break;
      case status::PageKind::sub_merchant:
        v.sub_merchant = read_sub_merchant(tx, query.argument);
        // The history also of an mchid no longer (or never) desired: audit rows outlive rows.
        v.audit =
            audit_rows(tx.exec_prepared("status_audit_sub_merchant", query.argument, status::kSubMerchantAuditRows));
        impl_->statements += 2;
        break;
    }
    tx.commit();
    return v;
  });
}

}  // namespace callbackd::pg
