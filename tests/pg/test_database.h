// A fresh database per test case, cloned from the template that the harness built with the
// real `callbackd migrate` (see pg-harness). Dropped again when the object goes away.
#pragma once

#include <string>

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

// Writes a minimal YAML config pointing at `conninfo` into a temp file and returns its path.
std::string write_config_for(const std::string& conninfo, const std::string& extra_yaml = "");

}  // namespace callbackd::test
