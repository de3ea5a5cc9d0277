// The command line: `callbackd [--config FILE] COMMAND [OPTIONS]`.
// Parsing is pure (argv in, a request or a usage error out) so that it is unit-tested.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace callbackd::app {

inline constexpr std::string_view kDefaultConfigPath = "/etc/callbackd/callbackd.yaml";

// A long option that takes a value (`--name=VALUE` or `--name VALUE`).
struct OptionSpec {
  std::string_view name;   // e.g. "--progress"
  std::string_view value;  // what it takes, for --help and errors, e.g. "auto|always|never"
  // Whether `value` is acceptable; a refused value is a usage error naming the option.
  bool (*accepts)(std::string_view value);
};

// One subcommand and the flags it accepts. Only commands that fully work are listed.
struct CommandSpec {
  std::string_view name;
  std::string_view summary;
  std::vector<std::string_view> flags;  // long flags without value, e.g. "--exit-when-idle"
  std::vector<OptionSpec> options = {};
  std::string_view argument = {};  // one required positional argument ("TENANT"), or none
};

const std::vector<CommandSpec>& commands();

struct CliRequest {
  enum class Kind { help, version, command };
  Kind kind = Kind::help;
  std::string config_path{kDefaultConfigPath};
  bool config_given = false;  // --config was on the command line
  std::string command;
  std::vector<std::string> flags;
  std::map<std::string, std::string, std::less<>> options;  // name -> value, accepted already
  std::string argument;                                     // the command's positional argument (CommandSpec::argument)

  bool has_flag(std::string_view flag) const;
  // The option's value, or `fallback` when it was not given.
  std::string option(std::string_view name, std::string_view fallback) const;
};

struct UsageError {
  std::string message;  // names the offending argument and what is accepted
};

Result<CliRequest, UsageError> parse_cli(const std::vector<std::string>& args);

// `status --interval`: how often `status --watch` reads the database.
inline constexpr std::string_view kDefaultWatchInterval = "2s";
inline constexpr std::chrono::milliseconds kMinWatchInterval{200};
inline constexpr std::chrono::milliseconds kMaxWatchInterval{3'600'000};

// The text of `callbackd --help`.
std::string help_text();

}  // namespace callbackd::app
