#include <catch2/catch.hpp>

#include <fstream>

#include "core/credentials.h"

namespace fs = std::filesystem;
using namespace callbackd;

namespace {
struct TempTree {
  fs::path root;
  TempTree() {
    char tmpl[] = "/tmp/callbackd-cred-test.XXXXXX";
    root = mkdtemp(tmpl);
    fs::create_directories(root / "keys" / "acme");
    std::ofstream(root / "keys" / "acme" / "key.pem") << "k";
    std::ofstream(root / "secret.pem") << "s";
    fs::create_directories(root / "keys-other");
    std::ofstream(root / "keys-other" / "x.pem") << "x";
    fs::create_symlink(root / "secret.pem", root / "keys" / "escape.pem");
    fs::create_symlink("acme/key.pem", root / "keys" / "inside.pem");
  }
  ~TempTree() { fs::remove_all(root); }
  std::string dir() const { return (root / "keys").string(); }
};
}  // namespace

TEST_CASE("key paths from SQL resolve only inside the credentials directory", "[credentials]") {
  TempTree t;
  struct Row {
    std::string sql_path;
    std::string error;  // empty: accepted
  };
  const std::vector<Row> rows = {
      {"acme/key.pem", ""},
      {"inside.pem", ""},  // a symlink that stays inside is fine
      {"", "the key path is empty"},
      {"/etc/shadow", "absolute paths are refused ('/etc/shadow')"},
      {"../secret.pem", "'..' is refused in key paths"},
      {"acme/../../secret.pem", "'..' is refused in key paths"},
      {"escape.pem", "outside the credentials directory"},
      {"missing.pem", "cannot be opened"},
  };
  for (const auto& row : rows) {
    INFO(row.sql_path);
    auto r = resolve_credential_path(t.dir(), row.sql_path);
    if (row.error.empty()) {
      REQUIRE(r.ok());
      CHECK(r.value().string().find((fs::canonical(t.root) / "keys").string()) == 0);
    } else {
      REQUIRE(!r.ok());
      INFO(r.error());
      CHECK(r.error().find(row.error) != std::string::npos);
    }
  }
}

TEST_CASE("a sibling directory sharing the prefix is not inside", "[credentials]") {
  TempTree t;
  fs::create_symlink(t.root / "keys-other" / "x.pem", t.root / "keys" / "sibling.pem");
  auto r = resolve_credential_path(t.dir(), "sibling.pem");
  REQUIRE(!r.ok());
  CHECK(r.error().find("outside the credentials directory") != std::string::npos);
}

TEST_CASE("no credentials directory is a clear error", "[credentials]") {
  auto r = resolve_credential_path("", "a.pem");
  REQUIRE(!r.ok());
  CHECK(r.error().find("set credentials_dir") != std::string::npos);
}

TEST_CASE("the credentials directory itself: missing, not a directory, fine, not configured", "[credentials]") {
  TempTree tree;
  const std::string file = (tree.root / "secret.pem").string();
  const std::string absent = (tree.root / "absent").string();
  struct Row {
    std::string path;
    std::string what;  // "" = no problem
  };
  const Row rows[] = {
      {tree.dir(), ""},
      {"", ""},  // none configured: each tenant reports "no credentials directory"
      {absent, absent + " cannot be opened: No such file or directory"},
      {file, file + " is not a directory"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.path);
    const auto problem = credentials_dir_problem(row.path);
    if (row.what.empty()) {
      CHECK_FALSE(problem.has_value());
      continue;
    }
    REQUIRE(problem.has_value());
    CHECK(problem->where == "credentials_dir");
    CHECK(problem->what == row.what);
    CHECK(problem->fix.rfind("create it", 0) == 0);
  }
}
