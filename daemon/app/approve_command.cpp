// `callbackd approve TENANT`: releases what the tenant's change budget holds, as
// `SELECT callbackd.approve_changes('TENANT')` does (it is that call). The approval is recorded
// by the database (callbackd.change_approvals, and audit_log with outcome changes_approved) under
// the login role, so run it as an operator's login, not the daemon's (CALLBACKD_DATABASE_URL
// overrides database.url). Exit 0 (also when nothing was held), 1 when refused or unreachable.
#include <iostream>

#include "app/commands.h"
#include "app/report_text.h"
#include "core/config.h"
#include "core/reconcile/held_changes.h"
#include "pg/approvals.h"
#include "pg/conninfo.h"

namespace callbackd::app {

int run_approve(const CliRequest& req) {
  const Config config = load_config(req.config_path);
  try {
    const long long released = pg::approve_changes(config.database, req.argument);
    std::cout << "approve: tenant " << printable(req.argument) << ": " << reconcile::with_thousands(released)
              << " held row(s) released"
              << (released == 0 ? " (nothing was held; the approval still covers the changes of the last hour)" : "")
              << "; recorded in callbackd.change_approvals and callbackd.audit_log (database "
              << pg::describe_conninfo(config.database.url) << ")\n";
    return 0;
  } catch (const DatabaseError& e) {
    std::cerr << "callbackd: approve: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace callbackd::app
