// Key paths come from SQL (callbackd.tenants), and whoever can write a tenant row must not be
// able to make the daemon read an arbitrary file. So a path from SQL is only ever resolved
// inside the credentials directory: absolute paths, ".." and symlinks that lead out of it are
// refused.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "core/error.h"

namespace callbackd {

// The lexical rules alone (no file system access): relative, non-empty, no "..", no NUL.
// Returns an empty string when `sql_path` is acceptable, otherwise what is wrong.
std::string lexical_credential_path_problem(const std::string& sql_path);

// Resolves `sql_path` against `credentials_dir` and follows symlinks; the real file must lie
// inside the real credentials directory. The error says what is wrong and how to fix it.
Result<std::filesystem::path, std::string> resolve_credential_path(const std::string& credentials_dir,
                                                                   const std::string& sql_path);

// The configured credentials directory itself, checked once at start-up: it is the daemon's
// own setting, so a directory that is missing or cannot be searched stops `run` (naming it
// and the fix) instead of pausing every tenant. Empty `credentials_dir` (none configured, no
// $CREDENTIALS_DIRECTORY) is not a problem here: tenants then say so one by one. The problem's
// `where` is "CONFIG_PATH: credentials_dir" (just "credentials_dir" without `config_path`).
std::optional<Problem> credentials_dir_problem(const std::string& credentials_dir, const std::string& config_path = "");

}  // namespace callbackd
