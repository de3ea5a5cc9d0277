#include "pg/test_database.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

#include <pqxx/pqxx>

namespace callbackd::test {
namespace {

std::string read_state_file(const std::string& name) {
  const char* dir = std::getenv("CALLBACKD_PG_STATE_DIR");
  std::string path = std::string(dir ? dir : CALLBACKD_PG_STATE_DIR) + "/" + name;
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line))
    throw std::runtime_error("no test cluster: " + path +
                             " is missing; run the suite through ctest (fixture pg_cluster_start)");
  return line;
}

std::string unique_name() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  std::ostringstream s;
  s << "t_" << getpid() << "_" << counter++ << "_" << (rd() % 100000);
  return s.str();
}

}  // namespace

TestDatabase::TestDatabase(Schema schema)
    : admin_conninfo_(read_state_file("conninfo")), host_(read_state_file("cluster")), name_(unique_name()) {
  pqxx::connection admin(admin_conninfo_);
  pqxx::nontransaction tx(admin);
  std::string sql = "CREATE DATABASE " + tx.quote_name(name_);
  if (schema == Schema::migrated) sql += " TEMPLATE callbackd_template";
  tx.exec0(sql);
  conninfo_ = "host=" + host_ + " user=postgres dbname=" + name_;
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection admin(admin_conninfo_);
    pqxx::nontransaction tx(admin);
    tx.exec0("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
  } catch (...) {
    // The harness removes the whole cluster afterwards; a leftover database is harmless.
  }
}

LoginRole::LoginRole(const TestDatabase& db, const std::string& prefix, const std::string& group)
    : admin_(db.conninfo()), name_(prefix + "_" + db.name()) {
  pqxx::connection c(admin_);
  pqxx::nontransaction tx(c);
  tx.exec0("CREATE ROLE " + tx.quote_name(name_) + " LOGIN");
  tx.exec0("GRANT " + tx.quote_name(group) + " TO " + tx.quote_name(name_));
  conninfo_ = "host=" + db.host() + " user=" + name_ + " dbname=" + db.name();
}

LoginRole::~LoginRole() {
  try {
    pqxx::connection c(admin_);
    pqxx::nontransaction tx(c);
    tx.exec0("DROP ROLE IF EXISTS " + tx.quote_name(name_));
  } catch (...) {
    // The harness removes the cluster afterwards; a leftover role is harmless there.
  }
}

std::string write_config_for(const std::string& conninfo, const std::string& extra_yaml) {
  char path[] = "/tmp/callbackd-test-config.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  close(fd);
  std::ofstream out(path);
  out << "database:\n  url: \"" << conninfo << "\"\n" << extra_yaml;
  return path;
}

DatabaseConfig database_config(const std::string& conninfo) {
  DatabaseConfig c;
  c.url = conninfo;
  return c;
}

void exec_sql(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  tx.exec0(sql);
  tx.commit();
}

long long query_number(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::work tx(c);
  const auto value = tx.exec1(sql)[0].as<long long>();
  tx.commit();
  return value;
}

}  // namespace callbackd::test
