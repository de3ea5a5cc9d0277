// The command line: `callbackd [--config FILE] COMMAND [OPTIONS]`.
// Parsing is pure (argv in, a request or a usage error out) so that it is unit-tested.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace callbackd::app {

inline constexpr std::string_view kDefaultConfigPath = "/etc/callbackd/callbackd.yaml";

// One subcommand and the flags it accepts. Only commands that fully work are listed.
struct CommandSpec {
  std::string_view name;
  std::string_view summary;
  std::vector<std::string_view> flags;  // long flags without value, e.g. "--exit-when-idle"
  std::string_view argument;            // one required positional argument ("TENANT"), or none
};

const std::vector<CommandSpec>& commands();

struct CliRequest {
  enum class Kind { help, version, command };
  Kind kind = Kind::help;
  std::string config_path{kDefaultConfigPath};
  bool config_given = false;  // --config was on the command line
  std::string command;
  std::vector<std::string> flags;
  std::string argument;  // the command's positional argument (CommandSpec::argument)

  bool has_flag(std::string_view flag) const;
};

struct UsageError {
  std::string message;  // names the offending argument and what is accepted
};

Result<CliRequest, UsageError> parse_cli(const std::vector<std::string>& args);

// The text of `callbackd --help`.
std::string help_text();

}  // namespace callbackd::app
