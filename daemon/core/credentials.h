// Key paths come from SQL (callbackd.tenants), and whoever can write a tenant row must not be
// able to make the daemon read an arbitrary file. So a path from SQL is only ever opened
// beneath the credentials directory: absolute paths and ".." are refused, and no component
// beneath the directory may be a symlink (whether it leads out or stays inside). The file is
// opened relative to the directory in one step, and everything after (fstat, the ACL, the
// read) goes through that descriptor: there is no window between checking a path and reading
// whatever the path names by then.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/unique_fd.h"

namespace callbackd {

// The lexical rules alone (no file system access): relative, non-empty, no "..", no NUL.
// Returns an empty string when `sql_path` is acceptable, otherwise what is wrong.
std::string lexical_credential_path_problem(const std::string& sql_path);

// A key file opened (read-only, non-blocking, close-on-exec) beneath the credentials
// directory. Owns the descriptor.
class CredentialFile {
 public:
  CredentialFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  int fd() const noexcept { return fd_.get(); }
  // CREDENTIALS_DIR/SQL_PATH, as messages name the file.
  const std::string& path() const noexcept { return path_; }

 private:
  UniqueFd fd_;
  std::string path_;
};

// Why a key path cannot be opened, and what to do about it.
struct CredentialFileError {
  std::string what;  // "/creds/acme.pem cannot be opened: No such file or directory"
  std::string fix;   // "put the file in the credentials directory and name it relative to it"
};

// How the path beneath the directory is walked. `kernel` is openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), falling back to `per_component` where the kernel has no openat2
// (ENOSYS, Linux < 5.6) or a seccomp filter refuses it (EPERM); `per_component` opens one
// component at a time with O_NOFOLLOW. Both refuse the same paths; tests run both.
enum class BeneathResolver { kernel, per_component };

// Opens `sql_path` beneath `credentials_dir`. The directory itself may be reached through
// symlinks (systemd's $CREDENTIALS_DIRECTORY may be); nothing beneath it is followed. Errors
// name the file: "no credentials directory", the lexical problems above, "DIR/P cannot be
// opened: No such file or directory", "DIR/P: cannot be opened: Permission denied", and for a
// symlink "DIR/P: 'acme' is a symlink to ...", saying whether it leads outside the directory.
Result<CredentialFile, CredentialFileError> open_credential_file(const std::string& credentials_dir,
                                                                 const std::string& sql_path,
                                                                 BeneathResolver resolver = BeneathResolver::kernel);

// The configured credentials directory itself, checked once at start-up: it is the daemon's
// own setting, so a directory that is missing or cannot be searched stops `run` (naming it
// and the fix) instead of pausing every tenant. Empty `credentials_dir` (none configured, no
// $CREDENTIALS_DIRECTORY) is not a problem here: tenants then say so one by one. The problem's
// `where` is "CONFIG_PATH: credentials_dir" (just "credentials_dir" without `config_path`).
std::optional<Problem> credentials_dir_problem(const std::string& credentials_dir, const std::string& config_path = "");

}  // namespace callbackd
