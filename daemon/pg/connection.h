// Opening a connection, for the .cpp files of daemon/pg only (this header exposes libpqxx;
// the headers other layers include do not).
#pragma once

#include <memory>
#include <string>

#include <pqxx/pqxx>

#include "core/config.h"

namespace callbackd::pg {

// Connects with the configured deadline and an application_name that tells DBAs which
// callbackd command a session belongs to. Throws DatabaseError (core/error.h) naming the
// server by describe_conninfo(), never with a password.
std::unique_ptr<pqxx::connection> open_connection(const DatabaseConfig& db, const std::string& application_name);

}  // namespace callbackd::pg
