// The migrator against a real PostgreSQL: idempotence, concurrency, forward-only checks,
// errors that name the file or the server (never the password).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "pg/migrator.h"
#include "pg/test_database.h"
#include "support/process.h"

using callbackd::DatabaseConfig;
using callbackd::DatabaseError;
using callbackd::StartupError;
using callbackd::pg::Migration;
using callbackd::test::Child;
using callbackd::test::database_config;
using callbackd::test::TestDatabase;
using callbackd::test::wait_exit_status;

namespace {

long count(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<long>();
}

bool table_exists(const TestDatabase& db, const std::string& name) {
  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  return !tx.exec_params1("SELECT to_regclass($1)", name)[0].is_null();
}

// `callbackd --config CONFIG migrate`, stdout and stderr in one temp file.
callbackd::test::Child spawn_migrate(const std::string& config_path) {
  return callbackd::test::spawn_process({CALLBACKD_BINARY, "--config", config_path, "migrate"});
}

std::size_t occurrences(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("migrate applies every embedded migration once and a second run applies nothing", "[pg][migrate]") {
  TestDatabase db{TestDatabase::Schema::empty};
  const auto& embedded = callbackd::pg::embedded_migrations();
  REQUIRE(!embedded.empty());
  CHECK(embedded.front().name == "0001_init.sql");

  auto first = callbackd::pg::migrate(database_config(db), embedded);
  CHECK(first.applied.size() == embedded.size());
  CHECK(first.already_applied == 0);
  CHECK(first.schema_version == embedded.back().version);
  CHECK(table_exists(db, "callbackd.desired_callbacks"));

  auto second = callbackd::pg::migrate(database_config(db), embedded);
  CHECK(second.applied.empty());
  CHECK(second.already_applied == embedded.size());
  CHECK(second.schema_version == embedded.back().version);
  CHECK(count(db, "SELECT count(*) FROM callbackd.schema_migrations") == static_cast<long>(embedded.size()));

  pqxx::connection c(db.conninfo());
  pqxx::read_transaction tx(c);
  auto row = tx.exec_params1("SELECT name, checksum, applied_by FROM callbackd.schema_migrations WHERE version = $1",
                             embedded.front().version);
  CHECK(row[0].as<std::string>() == "0001_init.sql");
  CHECK(row[1].as<std::string>() == callbackd::pg::sha256_hex(embedded.front().sql));
  CHECK(row[2].as<std::string>() == "postgres");
}

TEST_CASE("the template built by the real callbackd migrate is at the binary's version", "[pg][migrate]") {
  TestDatabase db;
  auto status = callbackd::pg::schema_status(database_config(db), callbackd::pg::embedded_migrations());
  CHECK(status.up_to_date());
  CHECK(status.database_version == callbackd::pg::embedded_migrations().back().version);
  CHECK(status.binary_version == status.database_version);

  TestDatabase empty{TestDatabase::Schema::empty};
  auto fresh = callbackd::pg::schema_status(database_config(empty), callbackd::pg::embedded_migrations());
  CHECK_FALSE(fresh.up_to_date());
  CHECK(fresh.database_version == 0);
  CHECK(fresh.pending.size() == callbackd::pg::embedded_migrations().size());
  CHECK_FALSE(table_exists(empty, "callbackd.schema_migrations"));  // a status check creates nothing
}

TEST_CASE("callbackd migrate processes started at once all succeed and apply each file once", "[pg][migrate]") {
  const std::size_t n_migrations = callbackd::pg::embedded_migrations().size();
  // Several rounds on fresh databases: one round can happen to serialise by luck.
  for (int round = 0; round < 3; ++round) {
    TestDatabase db{TestDatabase::Schema::empty};
    std::string config = callbackd::test::write_config_for(db.conninfo());
    std::vector<Child> children;
    for (int i = 0; i < 3; ++i) children.push_back(spawn_migrate(config));
    std::string all_output;
    for (const auto& child : children) {
      int status = wait_exit_status(child);
      std::string out = callbackd::test::read_file(child.output_path);
      unlink(child.output_path.c_str());
      INFO("round " << round << " output: " << out);
      CHECK(status == 0);
      all_output += out;
    }
    unlink(config.c_str());
    CHECK(occurrences(all_output, "migrate: applied ") == n_migrations);
    CHECK(count(db, "SELECT count(*) FROM callbackd.schema_migrations") == static_cast<long>(n_migrations));
    CHECK(count(db, "SELECT count(DISTINCT version) FROM callbackd.schema_migrations") ==
          static_cast<long>(n_migrations));
  }
}

TEST_CASE("an edited migration is refused naming the file, before anything else is applied", "[pg][migrate]") {
  TestDatabase db{TestDatabase::Schema::empty};
  std::vector<Migration> original{{1, "0001_first.sql", "CREATE TABLE callbackd.first (x int);"}};
  callbackd::pg::migrate(database_config(db), original);

  std::vector<Migration> edited{{1, "0001_first.sql", "CREATE TABLE callbackd.first (x bigint);"},
                                {2, "0002_second.sql", "CREATE TABLE callbackd.second (x int);"}};
  try {
    callbackd::pg::migrate(database_config(db), edited);
    FAIL("an edited migration was accepted");
  } catch (const StartupError& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("migrations/0001_first.sql"));
    CHECK_THAT(msg, Catch::Contains("changed since it was applied"));
    CHECK_THAT(msg, Catch::Contains("forward-only"));
  }
  CHECK_FALSE(table_exists(db, "callbackd.second"));
  auto status = callbackd::pg::schema_status(database_config(db), edited);
  CHECK_FALSE(status.up_to_date());
  REQUIRE(status.problems.size() == 1);
  CHECK(status.problems[0].where == "migrations/0001_first.sql");

  SECTION("an edited embedded file is refused the same way") {
    TestDatabase migrated;
    auto list = callbackd::pg::embedded_migrations();
    list.front().sql += "\n-- an innocent-looking edit\n";
    CHECK_THROWS_WITH(callbackd::pg::migrate(database_config(migrated), list),
                      Catch::Contains("migrations/0001_init.sql"));
  }
  SECTION("the binary exits with EX_CONFIG naming the file when its file differs from the applied one") {
    TestDatabase migrated;
    {
      pqxx::connection c(migrated.conninfo());
      pqxx::work tx(c);
      tx.exec0("UPDATE callbackd.schema_migrations SET checksum = repeat('0', 64) WHERE version = 1");
      tx.commit();
    }
    std::string config = callbackd::test::write_config_for(migrated.conninfo());
    auto child = spawn_migrate(config);
    int exit_status = wait_exit_status(child);
    std::string out = callbackd::test::read_file(child.output_path);
    unlink(child.output_path.c_str());
    unlink(config.c_str());
    INFO(out);
    CHECK(exit_status == 78);
    CHECK_THAT(out, Catch::Contains("migrations/0001_init.sql") && Catch::Contains("forward-only"));
  }
}

TEST_CASE("the migrator refuses lists that would rewrite history", "[pg][migrate]") {
  TestDatabase db{TestDatabase::Schema::empty};
  std::vector<Migration> applied{{1, "0001_a.sql", "SELECT 1;"}, {3, "0003_c.sql", "SELECT 3;"}};
  callbackd::pg::migrate(database_config(db), applied);

  SECTION("a new file numbered below an applied one") {
    auto list = applied;
    list.push_back({2, "0002_b.sql", "SELECT 2;"});
    CHECK_THROWS_WITH(callbackd::pg::migrate(database_config(db), list),
                      Catch::Contains("migrations/0002_b.sql") && Catch::Contains("below the applied version 3"));
  }
  SECTION("a database newer than the binary") {
    std::vector<Migration> older{applied[0]};
    CHECK_THROWS_WITH(callbackd::pg::migrate(database_config(db), older),
                      Catch::Contains("version 3 (0003_c.sql)") && Catch::Contains("newer than this binary"));
  }
  SECTION("a renamed file") {
    auto list = applied;
    list[1].name = "0003_renamed.sql";
    CHECK_THROWS_WITH(callbackd::pg::migrate(database_config(db), list),
                      Catch::Contains("migrations/0003_renamed.sql"));
  }
  SECTION("two files with one version") {
    auto list = applied;
    list.push_back({3, "0003_twin.sql", "SELECT 3;"});
    CHECK_THROWS_AS(callbackd::pg::migrate(database_config(db), list), StartupError);
  }
}

TEST_CASE("a failing migration is rolled back together with its history row", "[pg][migrate]") {
  TestDatabase db{TestDatabase::Schema::empty};
  std::vector<Migration> list{
      {1, "0001_ok.sql", "CREATE TABLE callbackd.ok (x int);"},
      {2, "0002_bad.sql", "CREATE TABLE callbackd.half (x int); SELECT no_such_column FROM callbackd.ok;"}};
  CHECK_THROWS_WITH(callbackd::pg::migrate(database_config(db), list),
                    Catch::Contains("migrations/0002_bad.sql") && Catch::Contains("rolled back"));
  CHECK(table_exists(db, "callbackd.ok"));
  CHECK_FALSE(table_exists(db, "callbackd.half"));
  CHECK(count(db, "SELECT count(*) FROM callbackd.schema_migrations") == 1);

  // Fixed in a new file, the next run goes on from where it stopped.
  list[1] = {2, "0002_bad.sql", "CREATE TABLE callbackd.half (x int);"};
  auto result = callbackd::pg::migrate(database_config(db), list);
  CHECK(result.applied.size() == 1);
  CHECK(table_exists(db, "callbackd.half"));
}

TEST_CASE("an unreachable database is named by host and dbname, never by its password", "[pg][migrate]") {
  DatabaseConfig unreachable;
  unreachable.url = "host=/nonexistent/callbackd-socket-dir user=callbackd password=s3cret-pw dbname=callbackd_prod";
  unreachable.connect_timeout = std::chrono::milliseconds{2000};
  try {
    callbackd::pg::migrate(unreachable, callbackd::pg::embedded_migrations());
    FAIL("connected to a server that does not exist");
  } catch (const DatabaseError& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("cannot connect to PostgreSQL"));
    CHECK_THAT(msg, Catch::Contains("host=/nonexistent/callbackd-socket-dir"));
    CHECK_THAT(msg, Catch::Contains("dbname=callbackd_prod"));
    CHECK_THAT(msg, !Catch::Contains("s3cret-pw"));
  }

  SECTION("the same through the binary, with a URI") {
    std::string config = callbackd::test::write_config_for(
        "postgresql://callbackd:s3cret-pw@/callbackd_prod?host=/nonexistent/callbackd-socket-dir");
    Child child = spawn_migrate(config);
    int status = wait_exit_status(child);
    std::string out = callbackd::test::read_file(child.output_path);
    unlink(child.output_path.c_str());
    unlink(config.c_str());
    INFO(out);
    CHECK(status == 1);
    CHECK_THAT(out, Catch::Contains("dbname=callbackd_prod"));
    CHECK_THAT(out, Catch::Contains("host=/nonexistent/callbackd-socket-dir"));
    CHECK_THAT(out, !Catch::Contains("s3cret-pw"));
  }
}
