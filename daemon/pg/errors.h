// libpqxx's exceptions turned into DatabaseError (core/error.h), in one place, for the .cpp
// files of daemon/pg. Call these only inside a `catch` of a pqxx exception: they look at the
// exception being handled. Std types only.
#pragma once

#include <string>
#include <string_view>

namespace callbackd::pg {

// Whether the exception being handled says the session is gone: a broken connection, a commit
// whose outcome is unknown, or a SQLSTATE of class 08 or 57P01-57P03 (admin shutdown, crash
// shutdown, cannot connect now). Then the work of that session (its claims) is gone with it.
bool session_lost_by_current_exception();

// Rethrows the exception being handled as a DatabaseError that says what was being done
// (`what`), on which server (`where`, describe_conninfo: never a password), and what
// PostgreSQL said (with its SQLSTATE when it has one). A non-libpqxx exception is rethrown as is.
[[noreturn]] void rethrow_as_database_error(std::string_view what, const std::string& where);

}  // namespace callbackd::pg
