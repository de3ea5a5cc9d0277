#include "app/cli.h"

#include <algorithm>

#include "core/progress/progress_table.h"
#include "core/text.h"

namespace callbackd::app {

namespace {
bool is_progress_mode(std::string_view v) { return progress::progress_mode_from(v).has_value(); }
bool is_watch_interval(std::string_view v) {
  const auto d = duration_from_text(v);
  return d && *d >= kMinWatchInterval && *d <= kMaxWatchInterval;
}
bool is_tenant_id(std::string_view v) { return !v.empty(); }
}  // namespace

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> specs = {
      {"migrate", "apply pending migrations/ to the database (idempotent, safe to run concurrently)", {}, {}},
      {"check-config", "validate the YAML config and every tenant's key files; exit 0 or name every problem", {}, {}},
      {"plan",
       "what `run` would send now, per tenant and row, sending nothing (--detailed-exitcode: 2 if any); "
       "--refresh also reads the live value of every applied row and lists drift",
       {"--detailed-exitcode", "--refresh"},
       {{"--tenant", "TENANT", is_tenant_id}}},
      {"status",
       "per-tenant row counts by state and error code, pauses, oldest pending change (--watch: a live "
       "table, read every --interval, default 2s)",
       {"--watch"},
       {{"--interval", "DURATION (200ms to 1h)", is_watch_interval}}},
      {"run",
       "the daemon: reconcile until stopped (SIGTERM drains, SIGHUP reloads); on a terminal a live "
       "progress table (--progress, default auto)",
       {"--exit-when-idle"},
       {{"--progress", "auto|always|never", is_progress_mode}}},
      {"approve",
       "release the changes the tenant's change budget holds (SELECT callbackd.approve_changes); "
       "connect as a callbackd_operator member",
       {},
       {},
       "TENANT"},
  };
  return specs;
}

bool CliRequest::has_flag(std::string_view flag) const {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

std::string CliRequest::option(std::string_view name, std::string_view fallback) const {
  const auto it = options.find(name);
  return std::string(it == options.end() ? fallback : std::string_view(it->second));
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
      const std::string name = arg.substr(0, arg.find('='));
      const auto option =
          std::find_if(spec->options.begin(), spec->options.end(), [&](const OptionSpec& o) { return o.name == name; });
      if (option != spec->options.end()) {
        std::string value;
        if (name.size() < arg.size()) {
          value = arg.substr(name.size() + 1);
        } else if (i + 1 < args.size()) {
          value = args[++i];
        }
        if (!option->accepts(value))
          return UsageError{"'" + req.command + " " + name + "' takes " + std::string(option->value) + ", not '" +
                            value + "'"};
        req.options[name] = value;
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
    for (const auto& option : spec.options)
      s += "      " + std::string(option.name) + "=" + std::string(option.value) + "\n";
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
