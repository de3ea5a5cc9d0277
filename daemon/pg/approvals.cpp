#include "pg/approvals.h"

#include "core/error.h"
#include "core/text.h"
#include "pg/connection.h"
#include "pg/conninfo.h"
#include "pg/errors.h"
#include "pg/statements.h"

namespace callbackd::pg {

long long approve_changes(const DatabaseConfig& db, const std::string& tenant_id) {
  const std::string where = describe_conninfo(db.url);
  auto conn = open_connection(db, "callbackd-approve");
  try {
    conn->prepare("approve_changes", statement_text("approve_changes"));
    pqxx::work tx(*conn);
    const auto released = tx.exec_prepared1("approve_changes", tenant_id)[0].as<long long>();
    tx.commit();
    return released;
  } catch (const pqxx::insufficient_privilege& e) {
    throw DatabaseError("approving the held changes of tenant " + tenant_id + " on PostgreSQL at " + where +
                        " was refused: " + trimmed(e.what()) +
                        " (only members of callbackd_operator may approve, the daemon's role may not; connect as "
                        "an operator, e.g. CALLBACKD_DATABASE_URL='host=... user=alice' callbackd approve " +
                        tenant_id + ")");
  } catch (const pqxx::failure& e) {
    throw DatabaseError("approving the held changes of tenant " + tenant_id + " on PostgreSQL at " + where +
                        " failed: " + trimmed(e.what()));
  }
}

}  // namespace callbackd::pg
