#include "pg/statements.h"

#include <algorithm>

#include "core/error.h"

namespace callbackd::pg {

const std::string& statement_text(std::string_view name) {
  const auto& all = embedded_statements();
  const auto it = std::find_if(all.begin(), all.end(), [&](const Statement& s) { return s.name == name; });
  CALLBACKD_ASSERT(it != all.end());
  return it->text;
}

}  // namespace callbackd::pg
