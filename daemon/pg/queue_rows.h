// Turning a row of pending_work joined with desired_callbacks and sub_merchant_state into a
// WorkItem, for the .cpp files of daemon/pg only (exposes libpqxx). claim_due() and `plan`
// read the same columns by the same names, so that `plan` judges exactly what `run` would.
//
// Column names the query must provide: mchid, tenant_id, resync, notify_url, switch,
// desired_revision, state, state_revision, applied_notify_url, applied_switch,
// applied_revision, attempts, last_error_message (the last seven NULL when sub_merchant_state
// has no row), and allowed_notify_hosts (the tenant's, as JSON text; NULL: any host).
// Also the stored pauses of tenants, read alike by the store and by `status`.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "pg/reconcile_store.h"

namespace callbackd::pg {

using reconcile::WorkItem;

inline reconcile::RowState parse_row_state(const std::string& state) {
  // sub_merchant_state.state's CHECK constraint admits exactly these five.
  if (state == "in_sync") return reconcile::RowState::in_sync;
  if (state == "retrying") return reconcile::RowState::retrying;
  if (state == "failed") return reconcile::RowState::failed;
  if (state == "invalid") return reconcile::RowState::invalid;
  if (state == "drifted") return reconcile::RowState::drifted;
  return reconcile::RowState::pending;
}

template <class T>
std::optional<T> optional_field(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<T>();
}

inline WorkItem work_item_from(const pqxx::row& r) {
  WorkItem item;
  item.sub_mchid = r["mchid"].as<std::string>();
  item.tenant_id = r["tenant_id"].as<std::string>();
  item.resync = r["resync"].as<bool>();
  item.notify_url = optional_field<std::string>(r["notify_url"]);
  item.desired.notify_url = item.notify_url.value_or(std::string());
  item.desired.push_switch = optional_field<bool>(r["switch"]);
  item.desired.revision = r["desired_revision"].as<std::int64_t>();
  if (!r["state"].is_null()) {
    reconcile::RecordedState s;
    s.state = parse_row_state(r["state"].as<std::string>());
    s.revision = r["state_revision"].as<std::int64_t>();
    s.applied_notify_url = optional_field<std::string>(r["applied_notify_url"]);
    s.applied_switch = optional_field<bool>(r["applied_switch"]);
    s.applied_revision = optional_field<std::int64_t>(r["applied_revision"]);
    s.last_error_message = optional_field<std::string>(r["last_error_message"]);
    // Attempts count failures of one revision; a state about an older revision starts afresh.
    if (s.revision == item.desired.revision) item.attempts = r["attempts"].as<int>();
    item.recorded = std::move(s);
  }
  return item;
}

// tenants.allowed_notify_hosts from to_jsonb(...)::text: nullopt for NULL (any host). A NULL
// element (the array is stored verbatim) reads as "" and so as an entry that allows nothing.
inline std::optional<desired::AllowedHosts> allowed_hosts_from(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  std::vector<std::string> entries;
  for (const auto& e : nlohmann::json::parse(f.as<std::string>()))
    entries.push_back(e.is_string() ? e.get<std::string>() : std::string());
  return desired::parse_allowed_hosts(entries);
}

// A tenant paused by an error, from a row with tenant_id, error_code, paused_reason and
// probe_in_ms (the store and the inspector both read them with sql/tenant_pauses.sql).
inline std::map<std::string, reconcile::StoredTenantPause> stored_pauses_from(const pqxx::result& rows) {
  std::map<std::string, reconcile::StoredTenantPause> pauses;
  for (const auto& r : rows) {
    reconcile::StoredTenantPause p;
    p.error_code = r["error_code"].as<std::string>();
    p.reason = r["paused_reason"].as<std::string>();
    p.probe_in = std::chrono::milliseconds{r["probe_in_ms"].as<long long>()};
    pauses.emplace(r["tenant_id"].as<std::string>(), std::move(p));
  }
  return pauses;
}

}  // namespace callbackd::pg
