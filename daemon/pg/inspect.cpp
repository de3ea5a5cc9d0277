#include "pg/inspect.h"

#include "core/text.h"
#include "pg/connection.h"
#include "pg/conninfo.h"
#include "pg/migrator.h"
#include "pg/queue_rows.h"
#include "pg/statements.h"
#include "pg/tenants_query.h"

namespace callbackd::pg {

namespace {

using Snapshot = pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only>;

}  // namespace

struct Inspector::Impl {
  std::string where;
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<Snapshot> tx;

  template <class F>
  auto run(const char* what, F&& f) {
    try {
      return f(*tx);
    } catch (const pqxx::failure& e) {
      throw DatabaseError(std::string(what) + " failed on PostgreSQL at " + where + ": " + trimmed(e.what()) +
                          " (has `callbackd migrate` been run?)");
    }
  }
};

Inspector::Inspector(const DatabaseConfig& db) : impl_(std::make_unique<Impl>()) {
  impl_->where = describe_conninfo(db.url);
  impl_->conn = open_connection(db, "callbackd-inspect");
  try {
    prepare_tenant_statements(*impl_->conn);
    // Its own statements (sql/inspect_*.sql) and two of the store's: the same pauses and queue
    // ages the daemon reads.
    for (const char* name : {"inspect_queued_entries", "inspect_state_counts", "inspect_error_counts",
                             "inspect_held_changes", "inspect_applied_rows", "tenant_pauses", "queue_ages"})
      impl_->conn->prepare(name, statement_text(name));
    impl_->tx = std::make_unique<Snapshot>(*impl_->conn);
  } catch (const pqxx::failure& e) {
    throw DatabaseError("cannot open a read-only snapshot on PostgreSQL at " + impl_->where + ": " + trimmed(e.what()));
  }
}

Inspector::~Inspector() = default;

namespace {
std::map<std::string, reconcile::StoredTenantPause> read_pauses(pqxx::transaction_base& tx) {
  return stored_pauses_from(tx.exec_prepared("tenant_pauses"));
}
}  // namespace

std::vector<TenantOverview> Inspector::tenants() {
  return impl_->run("reading callbackd.tenants", [&](pqxx::transaction_base& tx) {
    auto pauses = read_pauses(tx);
    std::vector<TenantOverview> out;
    for (auto& t : read_tenants(tx)) {
      TenantOverview o;
      if (auto it = pauses.find(t.tenant_id); it != pauses.end()) o.pause = it->second;
      o.tenant = std::move(t);
      out.push_back(std::move(o));
    }
    return out;
  });
}

void Inspector::for_each_queued(const std::string& tenant_id, const std::function<void(const QueuedEntry&)>& visit) {
  impl_->run("reading callbackd.pending_work", [&](pqxx::transaction_base& tx) {
    bool first = true;
    std::optional<desired::AllowedHosts> allowed;
    for (const auto& r : tx.exec_prepared("inspect_queued_entries", tenant_id)) {
      if (first) allowed = allowed_hosts_from(r["allowed_notify_hosts"]);  // the tenant's: read once
      first = false;
      QueuedEntry e;
      e.item = work_item_from(r);
      if (!r["due_in_ms"].is_null()) e.due_in = std::chrono::milliseconds{r["due_in_ms"].as<long long>()};
      e.claimed_by = optional_field<std::string>(r["claimed_by"]);
      e.allowed_hosts = allowed;
      if (r["held"].as<bool>()) e.held_reason = r["held_reason"].as<std::string>("");
      visit(e);
    }
  });
}

std::vector<Inspector::AppliedRow> Inspector::applied_rows(const std::optional<std::string>& tenant_id) {
  return impl_->run("reading callbackd.sub_merchant_state", [&](pqxx::transaction_base& tx) {
    std::vector<AppliedRow> out;
    for (const auto& r : tx.exec_prepared("inspect_applied_rows", tenant_id))
      out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>()});
    return out;
  });
}

std::vector<TenantStatus> Inspector::status() {
  return impl_->run("reading callbackd.sync_status", [&](pqxx::transaction_base& tx) {
    std::vector<TenantStatus> out;
    std::map<std::string, std::size_t> index;
    auto pauses = read_pauses(tx);
    for (const auto& t : read_tenants(tx)) {
      TenantStatus s;
      s.tenant_id = t.tenant_id;
      s.mode = t.mode;
      s.certificate_mode = t.certificate_mode();
      s.platform_certificates = t.platform_certificates;
      if (auto it = pauses.find(t.tenant_id); it != pauses.end()) s.pause = it->second;
      index[s.tenant_id] = out.size();
      out.push_back(std::move(s));
    }
    auto find = [&](const pqxx::row& r) -> TenantStatus* {
      auto it = index.find(r["tenant_id"].as<std::string>());
      return it == index.end() ? nullptr : &out[it->second];
    };
    for (const auto& r : tx.exec_prepared("inspect_state_counts"))
      if (auto* s = find(r)) s->by_state[r["state"].as<std::string>()] = r["n"].as<long long>();
    for (const auto& r : tx.exec_prepared("inspect_error_counts"))
      if (auto* s = find(r))
        s->by_error.push_back(
            {r["state"].as<std::string>(), r["last_error_code"].as<std::string>(), r["n"].as<long long>()});
    for (const auto& r : tx.exec_prepared("inspect_held_changes"))
      if (auto* s = find(r))
        s->held_moves.push_back({optional_field<std::string>(r["applied_notify_url"]),
                                 optional_field<std::string>(r["notify_url"]), r["n"].as<long long>()});
    for (const auto& r : tx.exec_prepared("queue_ages")) {
      if (auto* s = find(r)) {
        s->queued = r["queued"].as<long long>();
        if (!r["oldest_ms"].is_null())
          s->oldest_pending_change = std::chrono::milliseconds{r["oldest_ms"].as<long long>()};
      }
    }
    return out;
  });
}

}  // namespace callbackd::pg

namespace callbackd::pg {

struct ProgressReader::Impl {
  std::string where;
  std::unique_ptr<pqxx::connection> conn;
};

ProgressReader::ProgressReader(const DatabaseConfig& db)
    : impl_(std::make_unique<Impl>(Impl{describe_conninfo(db.url), open_connection(db, "callbackd-progress")})) {
  try {
    impl_->conn->prepare("progress_counts", statement_text("progress_counts"));
  } catch (const pqxx::failure& e) {
    throw DatabaseError("cannot prepare the progress query on PostgreSQL at " + impl_->where + ": " +
                        trimmed(e.what()) + " (has `callbackd migrate` been run?)");
  }
}

ProgressReader::~ProgressReader() = default;

std::vector<TenantProgressCounts> ProgressReader::read() {
  try {
    pqxx::read_transaction tx(*impl_->conn);
    std::vector<TenantProgressCounts> out;
    for (const auto& r : tx.exec_prepared("progress_counts")) {
      const auto tenant_id = r["tenant_id"].as<std::string>();
      if (out.empty() || out.back().tenant_id != tenant_id) {
        TenantProgressCounts t;
        t.tenant_id = tenant_id;
        t.mode = parse_tenant_mode(r["mode"].as<std::string>());
        t.rate_per_minute = r["rate_per_minute"].as<int>();
        if (r["paused_by_error"].as<bool>())
          t.pause_error_code = optional_field<std::string>(r["pause_error_code"]).value_or("");
        t.sent_last_minute = r["sent_last_minute"].as<long long>();
        out.push_back(std::move(t));
      }
      if (!r["state"].is_null()) out.back().by_state[r["state"].as<std::string>()] = r["n"].as<long long>();
    }
    tx.commit();
    return out;
  } catch (const pqxx::failure& e) {
    throw DatabaseError("reading the progress counts failed on PostgreSQL at " + impl_->where + ": " +
                        trimmed(e.what()));
  }
}

}  // namespace callbackd::pg
