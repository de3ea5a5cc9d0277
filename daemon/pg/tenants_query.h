// Reading callbackd.tenants inside a caller's transaction, for the .cpp files of daemon/pg only
// (this header exposes libpqxx). load_tenants(), the reconcile store and `plan`/`status` share
// it, so the statements (sql/tenants_all.sql, sql/tenant_extra_keys.sql) and the mode mapping
// live in one place.
#pragma once

#include <vector>

#include <pqxx/pqxx>

#include "core/tenant.h"

namespace callbackd::pg {

// Declares the named statements read_tenants() uses; once per connection.
void prepare_tenant_statements(pqxx::connection_base& conn);

// Every tenant with its extra verification keys, ordered by tenant_id. Throws what libpqxx
// throws; the caller turns it into a DatabaseError that says what it was doing.
std::vector<TenantRow> read_tenants(pqxx::transaction_base& tx);

TenantMode parse_tenant_mode(const std::string& mode);

}  // namespace callbackd::pg
