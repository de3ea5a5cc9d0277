// A fresh database per test case, cloned from the template that the harness built with the
// real `callbackd migrate` (see pg-harness). Dropped again when the object goes away.
#pragma once

#include <string>

#include "core/config.h"

namespace callbackd::test {

class TestDatabase {
 public:
  enum class Schema { migrated, empty };
  explicit TestDatabase(Schema schema = Schema::migrated);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& name() const { return name_; }
  // libpq conninfo of this test's database.
  const std::string& conninfo() const { return conninfo_; }
  // The directory of the cluster's unix socket (host=...).
  const std::string& host() const { return host_; }

 private:
  std::string admin_conninfo_;
  std::string host_;
  std::string name_;
  std::string conninfo_;
};

// A LOGIN role that is a member of `group` (a role of migrations/0004_roles.sql), for one
// test. Roles are cluster-wide and tests run in parallel, so the name carries the test
// database's unique name; it is dropped again at the end. The harness cluster trusts local
// connections, so connecting as it needs no password.
class LoginRole {
 public:
  LoginRole(const TestDatabase& db, const std::string& prefix, const std::string& group);
  ~LoginRole();
  LoginRole(const LoginRole&) = delete;
  LoginRole& operator=(const LoginRole&) = delete;

  const std::string& name() const { return name_; }
  // libpq conninfo of the test's database, logged in as this role.
  const std::string& conninfo() const { return conninfo_; }

 private:
  std::string admin_;
  std::string name_;
  std::string conninfo_;
};

// One statement in a transaction of its own, committed (a fold, an INSERT); and the same for a
// statement answering one number.
void exec_sql(const TestDatabase& db, const std::string& sql);
long long query_number(const TestDatabase& db, const std::string& sql);

// The database section of a config connecting with `conninfo` (database.url), the rest its
// defaults: what the store and the inspector are given.
DatabaseConfig database_config(const std::string& conninfo);
inline DatabaseConfig database_config(const TestDatabase& db) { return database_config(db.conninfo()); }

// Writes a minimal YAML config pointing at `conninfo` into a temp file and returns its path.
std::string write_config_for(const std::string& conninfo, const std::string& extra_yaml = "");

}  // namespace callbackd::test
