// POSIX ACLs on real files, set with the operator's own tool (`setfacl`, package `acl`), for
// the tests of key files as systemd >= 254 hands them over. Header-only: the unit tier links
// no support library.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace callbackd::test {

struct SetfaclRun {
  int status = -1;     // as std::system returns it: 0 is success
  std::string output;  // stdout and stderr
};

// `setfacl ARGS FILE`, e.g. setfacl("-m u:101:r", path).
inline SetfaclRun setfacl(const std::string& args, const std::filesystem::path& file) {
  const std::string out = file.string() + ".setfacl-out";
  SetfaclRun run;
  run.status = std::system(("setfacl " + args + " '" + file.string() + "' >'" + out + "' 2>&1").c_str());
  std::ostringstream text;
  text << std::ifstream(out).rdbuf();
  run.output = text.str();
  std::remove(out.c_str());
  return run;
}

// Why ACLs cannot be tested in `dir`, or "" when they can. Only the two honest reasons count:
// setfacl is not installed, or the file system of `dir` has no ACLs. Any other failure of
// setfacl returns "", so that the test itself runs and fails on it.
inline std::string acl_unavailable_reason(const std::filesystem::path& dir) {
  if (std::system("command -v setfacl >/dev/null 2>&1") != 0)
    return "setfacl is not installed (apt-get install acl; scripts/setup installs it)";
  const auto probe = dir / "acl-probe";
  std::ofstream(probe) << "probe";
  const auto run = setfacl("-m u:4242:r", probe);
  std::filesystem::remove(probe);
  if (run.status != 0 && run.output.find("Operation not supported") != std::string::npos)
    return "the file system of " + dir.string() + " has no POSIX ACLs (" + run.output + ")";
  return "";
}

}  // namespace callbackd::test
