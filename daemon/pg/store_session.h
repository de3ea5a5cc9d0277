// ReconcileStore's session, shared by the .cpp files that implement its concerns (claims.cpp,
// records.cpp, tenant_leases.cpp): the connection, the refusal after a lost session, and the
// statement counter. For daemon/pg only (exposes libpqxx).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <pqxx/pqxx>

#include "core/error.h"
#include "core/instance_liveness.h"
#include "pg/errors.h"
#include "pg/reconcile_store.h"

namespace callbackd::pg {

inline long long millis(std::chrono::milliseconds d) { return static_cast<long long>(d.count()); }
inline long long unix_millis(std::chrono::system_clock::time_point t) {
  return millis(std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()));
}

struct ReconcileStore::Impl {
  DatabaseConfig db;
  std::string instance;
  ProcessIdentity self = this_process();  // recorded with the heartbeat (0005)
  PidProber probe;                        // about other instances of this machine
  std::string where;                      // describe_conninfo: never a password
  std::string application_name;
  std::unique_ptr<pqxx::connection> conn;
  bool broken = true;
  std::uint64_t statements = 0;

  // Connects and prepares every statement of sql/ (throws DatabaseError).
  void connect();

  // Runs `f` on the connection; libpqxx's exceptions become DatabaseError naming `what` and
  // the server (errors.h). After a lost session the store refuses work until reconnect():
  // libpqxx 6 would otherwise reconnect silently on the next call, and the caller must learn
  // that claims and in-flight statements of the old session are gone.
  template <class F>
  auto run(const char* what, F&& f) {
    if (!conn || broken)
      throw DatabaseError(std::string(what) + ": not connected to PostgreSQL at " + where +
                          " (the connection was lost; reconnect() first)");
    try {
      return f(*conn);
    } catch (const pqxx::failure&) {
      if (session_lost_by_current_exception() || !conn->is_open()) broken = true;
      rethrow_as_database_error(what, where);
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

}  // namespace callbackd::pg
