// What the systemd-nspawn tests share (tests/systemd/*_nspawntest.cpp): whether a container
// can be booted here, files staged with explicit modes, the driver's key=value record, and a
// booted container that is always powered off.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "support/process.h"

namespace callbackd::test::nspawn {

// Why no container can be booted here (not root, no systemd-nspawn), or nullopt.
std::optional<std::string> why_nspawn_cannot_run();

// Copies `from` to `to` (parents created) with exactly `mode`.
void install_file(const std::string& from, const std::string& to, std::filesystem::perms mode);
// Creates `path` (and its parents) with exactly `mode`.
void make_dir(const std::string& path, std::filesystem::perms mode);
// For failure messages: the last `bytes` of `text`.
std::string tail(const std::string& text, std::size_t bytes);
// The key=value lines a driver wrote to `path`.
std::map<std::string, std::string> read_steps(const std::string& path);

// Modes the staged files get, whatever the checkout's umask.
inline constexpr auto kWorldReadableDir = std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                          std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                          std::filesystem::perms::others_exec;
inline constexpr auto kPublicFile = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                    std::filesystem::perms::group_read | std::filesystem::perms::others_read;
inline constexpr auto kPrivateFile = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;

// A booted container, powered off when this goes out of scope (a failed REQUIRE included).
class Container {
 public:
  explicit Container(const std::vector<std::string>& args);
  ~Container();
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  // systemd-nspawn's exit status once the container powered off, or -1 when it did not
  // within `limit` (it is stopped then).
  int wait_for(std::chrono::seconds limit);
  std::string console() const;

 private:
  std::optional<int> wait_until_exit(std::chrono::milliseconds limit);
  void stop();

  Child child_;
  bool reaped_ = false;
};

// A directory removed with everything in it when this goes out of scope.
struct RemoveTree {
  std::string path;
  ~RemoveTree() { std::filesystem::remove_all(path); }
};

// A fresh directory under /tmp named PREFIX.XXXXXX (removed by the caller's RemoveTree).
std::string make_temp_dir(const std::string& prefix);

}  // namespace callbackd::test::nspawn
