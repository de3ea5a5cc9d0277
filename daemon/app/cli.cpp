#include "app/cli.h"

#include <algorithm>

namespace callbackd::app {

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> specs = {
      {"migrate", "apply pending migrations/ to the database (idempotent, safe to run concurrently)", {}, {}},
      {"check-config", "validate the YAML config and every tenant's key files; exit 0 or name every problem", {}, {}},
      {"plan",
       "what `run` would send now, per tenant and row, sending nothing (--detailed-exitcode: 2 if any)",
       {"--detailed-exitcode"},
       {}},
      {"status", "per-tenant row counts by state and error code, pauses, oldest pending change", {}, {}},
      {"run", "the daemon: reconcile until stopped (SIGTERM drains, SIGHUP reloads)", {"--exit-when-idle"}, {}},
      {"approve",
       "release the changes the tenant's change budget holds (SELECT callbackd.approve_changes); "
       "connect as a callbackd_operator member",
       {},
       "TENANT"},
  };
  return specs;
}

bool CliRequest::has_flag(std::string_view flag) const {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

namespace {
const CommandSpec* find_command(std::string_view name) {
  for (const auto& spec : commands())
    if (spec.name == name) return &spec;
  return nullptr;
}

std::string command_names() {
  std::string s;
  for (const auto& spec : commands()) {
    if (!s.empty()) s += ", ";
    s += spec.name;
  }
  return s;
}
}  // namespace

Result<CliRequest, UsageError> parse_cli(const std::vector<std::string>& args) {
  CliRequest req;
  bool command_seen = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      req.kind = CliRequest::Kind::help;
      return req;
    }
    if (arg == "--version") {
      req.kind = CliRequest::Kind::version;
      return req;
    }
    if (arg == "--config" || arg.starts_with("--config=")) {
      std::string value;
      if (arg == "--config") {
        if (i + 1 >= args.size())
          return UsageError{"--config needs a file path, e.g. --config /etc/callbackd/callbackd.yaml"};
        value = args[++i];
      } else {
        value = arg.substr(std::string_view("--config=").size());
      }
      if (value.empty()) return UsageError{"--config needs a non-empty file path"};
      req.config_path = value;
      req.config_given = true;
      continue;
    }
    if (!command_seen && !arg.empty() && arg[0] != '-') {
      if (find_command(arg) == nullptr)
        return UsageError{"unknown command '" + arg + "'; the commands are: " + command_names()};
      req.command = arg;
      command_seen = true;
      continue;
    }
    if (command_seen) {
      const CommandSpec* spec = find_command(req.command);
      if (std::find(spec->flags.begin(), spec->flags.end(), arg) != spec->flags.end()) {
        req.flags.push_back(arg);
        continue;
      }
      if (!spec->argument.empty() && req.argument.empty() && !arg.empty() && arg[0] != '-') {
        req.argument = arg;
        continue;
      }
      return UsageError{"'" + req.command + "' does not take '" + arg + "'; see callbackd --help"};
    }
    return UsageError{"unknown option '" + arg + "'; see callbackd --help"};
  }
  if (!command_seen) return UsageError{"no command given; the commands are: " + command_names()};
  if (const CommandSpec* spec = find_command(req.command); !spec->argument.empty() && req.argument.empty())
    return UsageError{"'" + req.command + "' needs " + std::string(spec->argument) + ", e.g. callbackd " + req.command +
                      " acme"};
  req.kind = CliRequest::Kind::command;
  return req;
}

std::string help_text() {
  std::string s =
      "Usage: callbackd [--config FILE] COMMAND [OPTIONS]\n"
      "\n"
      "Reconciles the WeChat Pay marketing-event notify URL (POST /v3/marketing/favor/callbacks)\n"
      "of many sub-merchants with the desired state kept in PostgreSQL.\n"
      "\n"
      "Options:\n"
      "  --config FILE   the YAML config (default /etc/callbackd/callbackd.yaml)\n"
      "  --help          this text\n"
      "  --version       the version\n"
      "\n"
      "Commands:\n";
  for (const auto& spec : commands()) {
    std::string line = "  " + std::string(spec.name);
    if (!spec.argument.empty()) line += " " + std::string(spec.argument);
    line.resize(std::max<std::size_t>(line.size() + 1, 17), ' ');
    s += line + std::string(spec.summary) + "\n";
    for (auto flag : spec.flags) s += "      " + std::string(flag) + "\n";
  }
  s += "\n"
       "Environment:\n"
       "  CALLBACKD_DATABASE_URL   overrides database.url from the config\n"
       "  CREDENTIALS_DIRECTORY    default credentials_dir (set by systemd LoadCredential=)\n"
       "\n"
       "Exit status: 0 success, 1 runtime failure, 64 usage error, 78 configuration error.\n";
  return s;
}

}  // namespace callbackd::app
