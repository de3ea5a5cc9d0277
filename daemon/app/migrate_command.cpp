// `callbackd migrate`: bring the database to the schema this binary carries. Safe to run
// from every instance at start-up (e.g. ExecStartPre=); see pg/migrator.h for the rules.
#include <iostream>

#include "app/commands.h"
#include "core/config.h"
#include "pg/conninfo.h"
#include "pg/migrator.h"

namespace callbackd::app {

int run_migrate(const CliRequest& req) {
  const Config config = load_config(req.config_path);
  const std::string where = pg::describe_conninfo(config.database.url);
  try {
    auto result = pg::migrate(config.database, pg::embedded_migrations(), [](const pg::AppliedMigration& m) {
      // One line as each commits, so a long migration shows where it is.
      std::cout << "migrate: applied " << m.name << " (" << m.took.count() << " ms)" << std::endl;
    });
    if (result.applied.empty()) {
      std::cout << "migrate: " << where << " is up to date at schema version " << result.schema_version << " ("
                << result.already_applied << " migrations applied earlier, none pending)\n";
    } else {
      std::cout << "migrate: " << where << " is now at schema version " << result.schema_version << " ("
                << result.applied.size() << " applied now, " << result.already_applied << " earlier)\n";
    }
    return 0;
  } catch (const DatabaseError& e) {
    std::cerr << "callbackd: migrate: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace callbackd::app
