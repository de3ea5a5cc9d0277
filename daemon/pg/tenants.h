// Reading callbackd.tenants (and the extra verification keys of tenant_wechatpay_keys).
#pragma once

#include <vector>

#include "core/config.h"
#include "core/tenant.h"

namespace callbackd::pg {

// Every tenant, ordered by tenant_id. Throws DatabaseError when the database cannot be read.
std::vector<TenantRow> load_tenants(const DatabaseConfig& db);

}  // namespace callbackd::pg
