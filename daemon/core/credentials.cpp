#include "core/credentials.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace callbackd {

namespace fs = std::filesystem;

std::string lexical_credential_path_problem(const std::string& sql_path) {
  if (sql_path.empty()) return "the key path is empty";
  if (sql_path.find('\0') != std::string::npos) return "the key path contains a NUL byte";
  const fs::path p(sql_path);
  if (p.is_absolute())
    return "absolute paths are refused ('" + sql_path +
           "'); write the file name relative to the credentials directory, e.g. 'acme/apiclient_key.pem'";
  for (const auto& part : p)
    if (part == "..")
      return "'..' is refused in key paths ('" + sql_path + "'); keys must stay inside the credentials directory";
  return {};
}

Result<fs::path, std::string> resolve_credential_path(const std::string& credentials_dir, const std::string& sql_path) {
  if (credentials_dir.empty())
    return std::string(
        "no credentials directory: set credentials_dir in the config or run under systemd with "
        "LoadCredential= (which sets $CREDENTIALS_DIRECTORY)");
  if (std::string lexical = lexical_credential_path_problem(sql_path); !lexical.empty()) return lexical;

  std::error_code ec;
  const fs::path real_dir = fs::canonical(credentials_dir, ec);
  if (ec) return "the credentials directory " + credentials_dir + " cannot be opened: " + ec.message();
  const fs::path joined = real_dir / sql_path;
  const fs::path real_file = fs::canonical(joined, ec);
  if (ec) return joined.string() + " cannot be opened: " + ec.message();

  // Compare whole path components, so that /keys-other is not taken to be inside /keys.
  auto file_it = real_file.begin();
  for (auto dir_it = real_dir.begin(); dir_it != real_dir.end(); ++dir_it, ++file_it)
    if (file_it == real_file.end() || *file_it != *dir_it)
      return joined.string() + " resolves to " + real_file.string() +
             ", outside the credentials directory " + real_dir.string() +
             " (symlinks out of it are refused); copy the key into the directory instead";
  return real_file;
}

std::optional<Problem> credentials_dir_problem(const std::string& credentials_dir, const std::string& config_path) {
  if (credentials_dir.empty()) return std::nullopt;
  const std::string where = config_path.empty() ? "credentials_dir" : config_path + ": credentials_dir";
  const std::string fix =
      "create it (owned by the daemon's user, mode 0700) and put the tenants' key files in it, or point "
      "credentials_dir at the directory that holds them";
  std::error_code ec;
  const auto status = fs::status(credentials_dir, ec);
  if (ec || !fs::exists(status))
    return Problem{where, credentials_dir + " cannot be opened: " +
                                          (ec ? ec.message() : std::string("No such file or directory")), fix};
  if (!fs::is_directory(status)) return Problem{where, credentials_dir + " is not a directory", fix};
  // Search permission is what resolving a key path inside it needs.
  if (::access(credentials_dir.c_str(), X_OK) != 0)
    return Problem{where, credentials_dir + " cannot be searched: " + std::strerror(errno), fix};
  return std::nullopt;
}

}  // namespace callbackd
