#include "pg/migrator.h"

#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <set>

#include "core/text.h"
#include "pg/connection.h"
#include "pg/conninfo.h"

namespace callbackd::pg {
namespace {

// Any fixed key works as long as every callbackd uses the same one; the bytes spell
// "cbd_migr" so that a DBA reading pg_locks can guess who holds it.
constexpr long long kMigrationLockKey = 0x6362645f6d696772LL;

// Run under the advisory lock only: CREATE ... IF NOT EXISTS alone is not safe against a
// concurrent creator (both pass the check, one fails on the catalog's unique index).
constexpr const char* kBootstrapSql = R"sql(
CREATE SCHEMA IF NOT EXISTS callbackd;
CREATE TABLE IF NOT EXISTS callbackd.schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  applied_by text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE callbackd.schema_migrations IS
  'One row per applied migrations/NNNN_name.sql (forward-only; the checksum is the sha256 of the file).';
)sql";

void prepare_statements(pqxx::connection& conn) {
  conn.prepare("migrations_lock", "SELECT pg_advisory_lock($1)");
  conn.prepare("migrations_unlock", "SELECT pg_advisory_unlock($1)");
  conn.prepare("migrations_history_exists", "SELECT to_regclass('callbackd.schema_migrations') IS NOT NULL");
  conn.prepare("migrations_history",
               "SELECT version, name, checksum FROM callbackd.schema_migrations ORDER BY version");
  conn.prepare("migrations_record",
               "INSERT INTO callbackd.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)");
}

struct Recorded {
  int version = 0;
  std::string name;
  std::string checksum;
};

// The whole policy, as a pure function of what is recorded and what the binary carries.
struct Plan {
  SchemaStatus status;
  std::vector<const Migration*> to_apply;
};

std::vector<Migration> sorted_checked(const std::vector<Migration>& migrations) {
  std::vector<Migration> sorted = migrations;
  std::sort(sorted.begin(), sorted.end(), [](const Migration& a, const Migration& b) { return a.version < b.version; });
  std::vector<Problem> problems;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i].version <= 0)
      problems.push_back(
          {"migrations/" + sorted[i].name, "version must be positive", "name the file NNNN_name.sql, NNNN >= 0001"});
    if (i > 0 && sorted[i].version == sorted[i - 1].version)
      problems.push_back({"migrations/" + sorted[i].name, "has the same version as migrations/" + sorted[i - 1].name,
                          "give each file its own number"});
  }
  if (!problems.empty()) throw StartupError(std::move(problems));
  return sorted;
}

Plan make_plan(const std::vector<Recorded>& recorded, const std::vector<Migration>& sorted) {
  Plan plan;
  std::map<int, const Migration*> by_version;
  for (const auto& m : sorted) by_version[m.version] = &m;
  if (!sorted.empty()) plan.status.binary_version = sorted.back().version;

  std::set<int> applied;
  const std::string forward_only =
      "migrations are forward-only: restore the file as it was applied and put the change in a new migrations/NNNN_name.sql";
  for (const auto& r : recorded) {
    applied.insert(r.version);
    plan.status.database_version = std::max(plan.status.database_version, r.version);
    auto it = by_version.find(r.version);
    if (it == by_version.end()) {
      plan.status.problems.push_back(
          {"callbackd.schema_migrations",
           "version " + std::to_string(r.version) + " (" + r.name +
               ") is applied but this callbackd does not carry it; the database is newer than this binary",
           "run the callbackd release that applied it, or a newer one"});
      continue;
    }
    const Migration& m = *it->second;
    if (m.name != r.name) {
      plan.status.problems.push_back(
          {"migrations/" + m.name, "version " + std::to_string(r.version) + " was applied from a file named " + r.name,
           forward_only});
    } else if (sha256_hex(m.sql) != r.checksum) {
      plan.status.problems.push_back(
          {"migrations/" + m.name,
           "changed since it was applied (recorded sha256 " + r.checksum + ", file has " + sha256_hex(m.sql) + ")",
           forward_only});
    }
  }
  for (const auto& m : sorted) {
    if (applied.count(m.version)) continue;
    if (m.version < plan.status.database_version) {
      plan.status.problems.push_back(
          {"migrations/" + m.name,
           "is not applied but numbered below the applied version " + std::to_string(plan.status.database_version),
           "renumber it above " + std::to_string(plan.status.database_version) +
               " (migrations run in order and are forward-only)"});
      continue;
    }
    plan.status.pending.push_back(m.name);
    plan.to_apply.push_back(&m);
  }
  return plan;
}

std::unique_ptr<pqxx::connection> connect(const DatabaseConfig& db) {
  auto conn = open_connection(db, "callbackd migrate");
  prepare_statements(*conn);
  return conn;
}

std::vector<Recorded> read_history(pqxx::transaction_base& tx) {
  std::vector<Recorded> out;
  if (!tx.exec_prepared1("migrations_history_exists")[0].as<bool>()) return out;
  for (const auto& row : tx.exec_prepared("migrations_history"))
    out.push_back({row[0].as<int>(), row[1].as<std::string>(), row[2].as<std::string>()});
  return out;
}

}  // namespace

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CALLBACKD_ASSERT(EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) == 1);
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    hex += digits[md[i] >> 4];
    hex += digits[md[i] & 0xf];
  }
  return hex;
}

MigrateResult migrate(const DatabaseConfig& db, const std::vector<Migration>& migrations,
                      const std::function<void(const AppliedMigration&)>& on_applied) {
  const std::vector<Migration> sorted = sorted_checked(migrations);
  const std::string where = describe_conninfo(db.url);
  auto conn = connect(db);
  MigrateResult result;
  const Migration* current = nullptr;
  try {
    {
      // Session-level, so it spans the per-migration transactions below; released by the
      // unlock at the end or, if we die, by the server when the session ends.
      pqxx::nontransaction lock_tx(*conn);
      lock_tx.exec_prepared("migrations_lock", kMigrationLockKey);
    }
    {
      pqxx::work tx(*conn, "callbackd_bootstrap");
      if (!tx.exec_prepared1("migrations_history_exists")[0].as<bool>()) tx.exec0(kBootstrapSql);
      tx.commit();
    }
    std::vector<Recorded> recorded;
    {
      pqxx::read_transaction tx(*conn);
      recorded = read_history(tx);
    }
    Plan plan = make_plan(recorded, sorted);
    if (!plan.status.problems.empty()) throw StartupError(plan.status.problems);
    result.already_applied = recorded.size();
    result.schema_version = plan.status.database_version;
    for (const Migration* m : plan.to_apply) {
      current = m;
      auto started = std::chrono::steady_clock::now();
      pqxx::work tx(*conn, "callbackd_migration");
      tx.exec(m->sql, m->name);
      tx.exec_prepared("migrations_record", m->version, m->name, sha256_hex(m->sql));
      tx.commit();
      AppliedMigration applied{
          m->version, m->name,
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)};
      result.applied.push_back(applied);
      result.schema_version = m->version;
      if (on_applied) on_applied(applied);
    }
    current = nullptr;
    {
      pqxx::nontransaction unlock_tx(*conn);
      unlock_tx.exec_prepared("migrations_unlock", kMigrationLockKey);
    }
  } catch (const pqxx::broken_connection& e) {
    throw DatabaseError("lost the connection to PostgreSQL at " + where +
                        (current ? " while applying migrations/" + current->name : std::string()) + ": " +
                        trimmed(e.what()));
  } catch (const pqxx::sql_error& e) {
    if (current)
      throw DatabaseError("migrations/" + current->name + " failed on " + where +
                          " and was rolled back: " + trimmed(e.what()));
    throw DatabaseError("migrating " + where + " failed: " + trimmed(e.what()));
  } catch (const pqxx::failure& e) {
    throw DatabaseError("migrating " + where + " failed: " + trimmed(e.what()));
  }
  return result;
}

SchemaStatus schema_status(const DatabaseConfig& db, const std::vector<Migration>& migrations) {
  const std::vector<Migration> sorted = sorted_checked(migrations);
  const std::string where = describe_conninfo(db.url);
  auto conn = connect(db);
  try {
    pqxx::read_transaction tx(*conn);
    return make_plan(read_history(tx), sorted).status;
  } catch (const pqxx::failure& e) {
    throw DatabaseError("reading the schema version of " + where + " failed: " + trimmed(e.what()));
  }
}

}  // namespace callbackd::pg
