// The reconcile store's session: connecting, preparing every statement of sql/ (embedded at
// build time, statements.h), and what the store's concerns share. The concerns themselves:
// claims.cpp, records.cpp, tenant_leases.cpp; the LISTEN connection: listener.cpp.
// Every statement is named and parameterised; every timestamp comes from now() in SQL, never
// from the daemon's clock (the daemon's clock is monotonic and means nothing to PostgreSQL).
//
// Single-statement operations run in a nontransaction: the statement is its own transaction
// (autocommit), so a claim or a whole record() batch costs one round trip and still commits or
// rolls back as a unit.
#include "pg/reconcile_store.h"

#include "core/text.h"
#include "pg/connection.h"
#include "pg/conninfo.h"
#include "pg/statements.h"
#include "pg/store_session.h"
#include "pg/tenants_query.h"

namespace callbackd::pg {

void ReconcileStore::Impl::connect() {
  conn.reset();
  broken = true;
  auto c = open_connection(db, application_name);
  try {
    // libpqxx prepares lazily, on first use; declaring costs no round trip.
    prepare_tenant_statements(*c);
    for (const auto& s : embedded_statements()) c->prepare(s.name, s.text);
    // Registered with the server now rather than on first use: a database without the
    // schema this binary needs fails here, at start-up, and record() is one round trip
    // from its first call on.
    for (const auto& s : embedded_statements()) c->prepare_now(s.name);
  } catch (const pqxx::broken_connection&) {
    rethrow_as_database_error("preparing statements", where);
  } catch (const pqxx::failure& e) {
    // Not a lost session: the schema lacks what a statement needs.
    throw DatabaseError("cannot prepare statements on PostgreSQL at " + where + ": " + trimmed(e.what()) +
                        " (has `callbackd migrate` been run?)");
  }
  conn = std::move(c);
  broken = false;
}

ReconcileStore::ReconcileStore(const DatabaseConfig& db, std::string instance, PidProber probe,
                               std::string application_name)
    : impl_(std::make_unique<Impl>()) {
  CALLBACKD_ASSERT(probe);
  impl_->probe = std::move(probe);
  impl_->db = db;
  impl_->instance = std::move(instance);
  impl_->application_name = std::move(application_name);
  impl_->where = describe_conninfo(db.url);
  impl_->connect();
}

ReconcileStore::~ReconcileStore() = default;

void ReconcileStore::reconnect() { impl_->connect(); }

bool ReconcileStore::connected() const { return impl_->conn && !impl_->broken && impl_->conn->is_open(); }

std::uint64_t ReconcileStore::statements_executed() const { return impl_->statements; }

}  // namespace callbackd::pg
