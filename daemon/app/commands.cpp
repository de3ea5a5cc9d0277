#include "app/commands.h"

#include <stdexcept>

namespace callbackd::app {

int run_command(const CliRequest& req) {
  if (req.command == "migrate") return run_migrate(req);
  if (req.command == "check-config") return run_check_config(req);
  if (req.command == "plan") return run_plan(req);
  if (req.command == "status") return run_status(req);
  if (req.command == "run") return run_daemon(req);
  if (req.command == "approve") return run_approve(req);
  // parse_cli only accepts listed commands; reaching here means the two lists disagree.
  CALLBACKD_ASSERT(!"command listed in commands() but not dispatched");
  return kExitFailure;
}

}  // namespace callbackd::app
