// The store's SQL: every daemon/pg/sql/<name>.sql, compiled in by embed_sql.cmake. The file
// name is the prepared statement's name, so code names a statement by that file name and the
// text lives only in the file. Std types only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace callbackd::pg {

struct Statement {
  std::string name;  // the file name without ".sql"
  std::string text;
};

// Sorted by name; generated at build time.
const std::vector<Statement>& embedded_statements();

// The text of sql/<name>.sql, for a connection that prepares only some of them (inspect.cpp).
// A name with no file is a bug (terminates).
const std::string& statement_text(std::string_view name);

}  // namespace callbackd::pg
