// One function per subcommand; run_command dispatches on the parsed request.
#pragma once

#include <optional>

#include "app/cli.h"
#include "core/config.h"
#include "core/error.h"

namespace callbackd::app {

inline constexpr int kExitFailure = 1;  // runtime failure (database unreachable, ...)
inline constexpr int kExitUsage = 64;   // EX_USAGE: bad command line
inline constexpr int kExitConfig = 78;  // EX_CONFIG: bad config, keys or schema

// Throws StartupError for configuration problems; returns the process exit status.
int run_command(const CliRequest& req);

}  // namespace callbackd::app

namespace callbackd::app {
// Each in its own file: app/migrate_command.cpp, app/check_config_command.cpp, ...
int run_migrate(const CliRequest& req);
int run_check_config(const CliRequest& req);
int run_plan(const CliRequest& req);     // app/plan_command.cpp
int run_status(const CliRequest& req);   // app/status_command.cpp
int run_daemon(const CliRequest& req);   // `callbackd run`: app/run_command.cpp
int run_approve(const CliRequest& req);  // app/approve_command.cpp

// wechatpay.platform_ca_file set but missing, unreadable or without a certificate: the
// problem, for check-config and run (app/check_config_command.cpp).
std::optional<Problem> platform_ca_problem(const Config& config);
}  // namespace callbackd::app
