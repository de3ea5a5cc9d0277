#include "pg/errors.h"

#include <exception>

#include <pqxx/pqxx>

#include "core/error.h"
#include "core/text.h"

namespace callbackd::pg {

namespace {

bool sqlstate_means_session_lost(std::string_view sqlstate) {
  return sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

}  // namespace

bool session_lost_by_current_exception() {
  try {
    throw;
  } catch (const pqxx::broken_connection&) {
    return true;
  } catch (const pqxx::in_doubt_error&) {
    return true;
  } catch (const pqxx::sql_error& e) {
    return sqlstate_means_session_lost(e.sqlstate());
  } catch (...) {
    return false;
  }
}

void rethrow_as_database_error(std::string_view what_sv, const std::string& where) {
  const std::string what(what_sv);
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    throw DatabaseError(what + ": lost the connection to PostgreSQL at " + where + ": " + trimmed(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    throw DatabaseError(what + ": connection to PostgreSQL at " + where +
                        " lost while committing; the outcome is unknown: " + trimmed(e.what()));
  } catch (const pqxx::sql_error& e) {
    throw DatabaseError(what + " failed on PostgreSQL at " + where + ": " + trimmed(e.what()) + " (SQLSTATE " +
                        e.sqlstate() + ")");
  } catch (const pqxx::failure& e) {
    throw DatabaseError(what + " failed on PostgreSQL at " + where + ": " + trimmed(e.what()));
  }
}

}  // namespace callbackd::pg
