// Approving what a tenant's change budget holds (migrations/0008_guard_rails.sql), for
// `callbackd approve TENANT`. The work is the SQL function callbackd.approve_changes, which only
// members of callbackd_operator may execute; this is its command-line door.
#pragma once

#include <string>

#include "core/config.h"

namespace callbackd::pg {

// Calls callbackd.approve_changes(tenant_id) as the login of `db` and returns how many held rows
// it released. Throws DatabaseError naming the server and, for a login that may not approve
// (the daemon's, say), which role may and how to connect as one; for an unknown tenant, the
// tenant.
long long approve_changes(const DatabaseConfig& db, const std::string& tenant_id);

}  // namespace callbackd::pg
