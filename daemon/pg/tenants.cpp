#include "pg/tenants.h"

#include <map>

#include <nlohmann/json.hpp>

#include "pg/connection.h"
#include "pg/migrator.h"
#include "pg/statements.h"
#include "pg/tenants_query.h"

namespace callbackd::pg {

TenantMode parse_tenant_mode(const std::string& mode) {
  // The column's CHECK constraint admits exactly these three.
  if (mode == "observe") return TenantMode::observe;
  if (mode == "paused") return TenantMode::paused;
  return TenantMode::apply;
}

void prepare_tenant_statements(pqxx::connection_base& conn) {
  for (const char* name : {"tenants_all", "tenant_extra_keys", "tenant_platform_certificates"})
    conn.prepare(name, statement_text(name));
}

std::vector<TenantRow> read_tenants(pqxx::transaction_base& tx) {
  std::vector<TenantRow> tenants;
  std::map<std::string, std::size_t> index;
  for (const auto& r : tx.exec_prepared("tenants_all")) {
    TenantRow t;
    t.tenant_id = r[0].as<std::string>();
    t.caller_mchid = r[1].as<std::string>();
    t.merchant_serial_no = r[2].as<std::string>();
    t.private_key_path = r[3].as<std::string>();
    // NULL in certificate mode (migrations/0009): "" in TenantRow.
    t.wechatpay_key_id = r[4].as<std::string>(std::string());
    t.wechatpay_key_path = r[5].as<std::string>(std::string());
    t.rate_per_minute = r[6].as<int>();
    t.mode = parse_tenant_mode(r[7].as<std::string>());
    t.max_in_flight = r[8].as<int>();
    if (!r[9].is_null()) {
      std::vector<std::string> hosts;
      // A NULL element (stored verbatim) reads as "", which the host check names as a problem.
      for (const auto& e : nlohmann::json::parse(r[9].as<std::string>()))
        hosts.push_back(e.is_string() ? e.get<std::string>() : std::string());
      t.allowed_notify_hosts = std::move(hosts);
    }
    t.apiv3_key_path = r[10].as<std::string>(std::string());
    index[t.tenant_id] = tenants.size();
    tenants.push_back(std::move(t));
  }
  for (const auto& r : tx.exec_prepared("tenant_extra_keys")) {
    auto it = index.find(r[0].as<std::string>());
    if (it != index.end()) tenants[it->second].extra_keys.push_back({r[1].as<std::string>(), r[2].as<std::string>()});
  }
  using Ms = std::chrono::milliseconds;
  for (const auto& r : tx.exec_prepared("tenant_platform_certificates")) {
    auto it = index.find(r[0].as<std::string>());
    if (it == index.end()) continue;
    tenants[it->second].platform_certificates.push_back(
        {r[1].as<std::string>(), r[2].as<std::string>(),
         std::chrono::system_clock::time_point(Ms(r[3].as<std::int64_t>())),
         std::chrono::system_clock::time_point(Ms(r[4].as<std::int64_t>())),
         std::chrono::system_clock::time_point(Ms(r[5].as<std::int64_t>()))});
  }
  return tenants;
}

std::vector<TenantRow> load_tenants(const DatabaseConfig& db) {
  auto conn = open_connection(db, "callbackd");
  try {
    prepare_tenant_statements(*conn);
    pqxx::read_transaction tx(*conn);
    return read_tenants(tx);
  } catch (const pqxx::sql_error& e) {
    throw DatabaseError("cannot read callbackd.tenants: " + std::string(e.what()) +
                        " (has `callbackd migrate` been run?)");
  }
}

}  // namespace callbackd::pg
