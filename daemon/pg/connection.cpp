#include "pg/connection.h"

#include "pg/conninfo.h"
#include "pg/migrator.h"

namespace callbackd::pg {

std::unique_ptr<pqxx::connection> open_connection(const DatabaseConfig& db, const std::string& application_name) {
  const std::string conninfo = conninfo_with_defaults(db.url, db.connect_timeout, application_name);
  try {
    return std::make_unique<pqxx::connection>(conninfo);
  } catch (const pqxx::broken_connection& e) {
    std::string msg = e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    throw DatabaseError("cannot connect to PostgreSQL at " + describe_conninfo(db.url) + ": " + msg);
  }
}

}  // namespace callbackd::pg
