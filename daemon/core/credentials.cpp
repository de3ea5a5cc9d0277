#include "core/credentials.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace callbackd {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPlaceFix = "put the file in the credentials directory and name it relative to it";
// The flags of the key file's own descriptor: O_NONBLOCK so that a FIFO planted at the path
// opens at once (and is then refused by fstat) instead of hanging the daemon.
constexpr int kKeyFileFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;

// The components of a lexically checked relative path, without "." and empty ones.
std::vector<std::string> components(const fs::path& relative) {
  std::vector<std::string> parts;
  for (const auto& part : relative)
    if (!part.empty() && part != ".") parts.push_back(part.string());
  return parts;
}

// openat2 resolves the whole path in the kernel: RESOLVE_BENEATH refuses anything that would
// leave `dirfd` (absolute symlinks, ".."), RESOLVE_NO_SYMLINKS every symlink on the way.
// Returns the descriptor, or -errno.
int open_beneath_kernel(int dirfd, const std::string& relative) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(kKeyFileFlags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  for (int attempt = 0;; ++attempt) {
    // glibc 2.36 has no openat2 wrapper.
    const long fd = ::syscall(SYS_openat2, dirfd, relative.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a rename elsewhere raced the lookup; the kernel asks for a retry.
    if (errno != EAGAIN || attempt == 3) return -errno;
  }
}

// The same one component at a time: each directory opened with O_NOFOLLOW from the previous
// one, the file last. Lexical checks have already refused ".." and absolute paths.
int open_beneath_per_component(int dirfd, const std::vector<std::string>& parts) {
  UniqueFd current;
  int at = dirfd;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    UniqueFd next(::openat(at, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) return -errno;
    current = std::move(next);
    at = current.get();
  }
  const int fd = ::openat(at, parts.back().c_str(), kKeyFileFlags | O_NOFOLLOW);
  return fd >= 0 ? fd : -errno;
}

// Only for the message, once the open has been refused: the first component beneath `dirfd`
// that is a symlink, and what it points to. (What it finds may have changed since the open;
// it decides nothing.)
struct SymlinkOnPath {
  std::string component;  // relative to the credentials directory: "acme" or "acme/key.pem"
  std::string target;     // as readlink says
};
std::optional<SymlinkOnPath> first_symlink(int dirfd, const std::vector<std::string>& parts) {
  UniqueFd current;
  int at = dirfd;
  fs::path prefix;
  for (const auto& part : parts) {
    prefix /= part;
    struct stat st {};
    if (::fstatat(at, part.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return std::nullopt;
    if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      const ssize_t n = ::readlinkat(at, part.c_str(), target.data(), target.size());
      target.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
      return SymlinkOnPath{prefix.string(), target};
    }
    if (!S_ISDIR(st.st_mode)) return std::nullopt;
    UniqueFd next(::openat(at, part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) return std::nullopt;
    current = std::move(next);
    at = current.get();
  }
  return std::nullopt;
}

// Whole path components, so that /keys-other is not taken to be inside /keys.
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto in = inner.begin();
  for (auto out = outer.begin(); out != outer.end(); ++out, ++in)
    if (in == inner.end() || *in != *out) return false;
  return true;
}

CredentialFileError symlink_refused(const std::string& credentials_dir, const std::string& shown,
                                    const SymlinkOnPath& link) {
  std::error_code ec;
  const fs::path real_dir = fs::canonical(credentials_dir, ec);
  const fs::path real_file = fs::weakly_canonical(shown, ec);
  const std::string what_link = "'" + link.component + "' is a symlink to " + link.target;
  if (!ec && !is_within(real_file, real_dir))
    return {shown + " resolves to " + real_file.string() + ", outside the credentials directory " + credentials_dir +
                " (" + what_link + "; symlinks out of it are refused)",
            "copy the key into the credentials directory instead"};
  std::string fix = "replace the symlink with the file itself";
  if (!ec && fs::is_regular_file(real_file, ec))
    fix += ", or name the file it points to: '" + real_file.lexically_relative(real_dir).string() + "'";
  return {shown + ": " + what_link + "; key paths may not go through symlinks, even inside the credentials directory",
          fix};
}

}  // namespace

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

Result<CredentialFile, CredentialFileError> open_credential_file(const std::string& credentials_dir,
                                                                 const std::string& sql_path,
                                                                 BeneathResolver resolver) {
  if (credentials_dir.empty())
    return CredentialFileError{
        "no credentials directory: set credentials_dir in the config or run under systemd with "
        "LoadCredential= (which sets $CREDENTIALS_DIRECTORY)",
        kPlaceFix};
  if (std::string lexical = lexical_credential_path_problem(sql_path); !lexical.empty())
    return CredentialFileError{std::move(lexical), kPlaceFix};
  const auto parts = components(sql_path);
  if (parts.empty())
    return CredentialFileError{"the key path '" + sql_path + "' names the credentials directory itself", kPlaceFix};
  const std::string shown = (fs::path(credentials_dir) / sql_path).string();

  // The directory's own path is the operator's setting and may go through symlinks
  // (/run/credentials/UNIT can be reached through one); only what lies beneath it is confined.
  const UniqueFd dir(::open(credentials_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0)
    return CredentialFileError{
        "the credentials directory " + credentials_dir + " cannot be opened: " + std::strerror(errno), kPlaceFix};

  int fd = resolver == BeneathResolver::kernel ? open_beneath_kernel(dir.get(), sql_path) : -ENOSYS;
  if (fd == -ENOSYS || fd == -EPERM) fd = open_beneath_per_component(dir.get(), parts);
  if (fd >= 0) return CredentialFile(fd, shown);

  const int err = -fd;
  if (auto link = first_symlink(dir.get(), parts)) return symlink_refused(credentials_dir, shown, *link);
  if (err == ENOENT || err == ENOTDIR)
    return CredentialFileError{shown + " cannot be opened: " + std::strerror(err), kPlaceFix};
  return CredentialFileError{shown + ": cannot be opened: " + std::strerror(err),
                             "make it readable by the user callbackd runs as"};
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
    return Problem{
        where, credentials_dir + " cannot be opened: " + (ec ? ec.message() : std::string("No such file or directory")),
        fix};
  if (!fs::is_directory(status)) return Problem{where, credentials_dir + " is not a directory", fix};
  // Search permission is what opening a key beneath it needs. access() asks the kernel, so an
  // ACL entry granting the daemon's user (systemd >= 254 gives the directory one, r-x, owned
  // by root, mode 0500) counts as it should.
  if (::access(credentials_dir.c_str(), X_OK) != 0)
    return Problem{where, credentials_dir + " cannot be searched: " + std::strerror(errno), fix};
  return std::nullopt;
}

}  // namespace callbackd
