// Forward-only schema migrations (migrations/NNNN_name.sql, compiled into the binary).
//
// migrate() applies the pending migrations in version order, each in its own transaction
// together with its row in callbackd.schema_migrations (version, name, checksum = sha256 hex
// of the file, applied_at, applied_by), all under a session advisory lock: any number of
// `callbackd migrate` started at once all succeed and every file is applied exactly once.
// A recorded migration whose file changed, a recorded migration this binary does not
// carry (the database is newer than the binary), or a new file numbered below an applied
// one is refused with a StartupError naming the file, before anything is applied.
//
// Migration files must not contain transaction control (BEGIN/COMMIT) or statements that
// cannot run inside a transaction (CREATE INDEX CONCURRENTLY).
//
// No libpqxx in this header: callers need only std types.
#pragma once

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"

namespace callbackd::pg {

struct Migration {
  int version = 0;   // NNNN of the file name
  std::string name;  // the file name, "0001_init.sql"; recorded and used in messages
  std::string sql;   // the file's bytes; their sha256 is the recorded checksum
};

// migrations/*.sql as built into this binary, in version order.
const std::vector<Migration>& embedded_migrations();

struct AppliedMigration {
  int version = 0;
  std::string name;
  std::chrono::milliseconds took{0};
};

struct MigrateResult {
  std::vector<AppliedMigration> applied;  // by this call, in order
  int schema_version = 0;                 // highest version recorded afterwards
  std::size_t already_applied = 0;        // found recorded before this call
};

// Applies every pending migration of `migrations` (any order; versions must be unique and
// positive) to the database of `db.url`. `on_applied` is called after each commit, so a
// caller can report progress of a long migration.
// Throws StartupError (changed, unknown or out-of-order migrations, bad list, unparsable
// conninfo) or DatabaseError (unreachable server, failing statement; the failing
// migration's transaction is rolled back and earlier ones stay applied).
MigrateResult migrate(const DatabaseConfig& db, const std::vector<Migration>& migrations,
                      const std::function<void(const AppliedMigration&)>& on_applied = {});

// What migrate() would do, read-only and without the lock (for readiness checks and
// `status`). A database never migrated has database_version 0 and everything pending.
struct SchemaStatus {
  int database_version = 0;          // highest version recorded in the database
  int binary_version = 0;            // highest version in `migrations`
  std::vector<std::string> pending;  // file names migrate() would apply, in order
  std::vector<Problem> problems;     // what migrate() would refuse (see above)
  bool up_to_date() const { return pending.empty() && problems.empty(); }
};

// Throws DatabaseError when the database cannot be read; StartupError for a bad list.
SchemaStatus schema_status(const DatabaseConfig& db, const std::vector<Migration>& migrations);

// sha256 of `bytes`, lower-case hex: the checksum recorded for a migration file.
std::string sha256_hex(const std::string& bytes);

}  // namespace callbackd::pg
