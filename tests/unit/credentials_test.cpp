#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
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
    fs::create_symlink("acme", root / "keys" / "acme-link");                // a directory inside, by a link
    fs::create_symlink(root / "keys-other", root / "keys" / "other-link");  // a directory outside
    fs::create_symlink("absent.pem", root / "keys" / "dangling.pem");
    fs::create_symlink(root / "keys" / "escape.pem", root / "keys" / "acme" / "chain.pem");  // a link to a link out
    // How systemd's $CREDENTIALS_DIRECTORY may be reached: through a symlink of its own.
    fs::create_symlink(root / "keys", root / "keys-via-link");
  }
  ~TempTree() { fs::remove_all(root); }
  std::string dir() const { return (root / "keys").string(); }
};

constexpr BeneathResolver kResolvers[] = {BeneathResolver::kernel, BeneathResolver::per_component};

std::string read_all(int fd) {
  std::string out(64, '\0');
  const ssize_t n = ::pread(fd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}
}  // namespace

TEST_CASE("key paths from SQL open only beneath the credentials directory, through no symlink", "[credentials]") {
  TempTree t;
  const std::string d = t.dir();
  struct Row {
    std::string sql_path;
    std::string error;  // the whole message; empty: accepted
    std::string fix;
  };
  const std::string place = "put the file in the credentials directory and name it relative to it";
  const std::string no_links = "; key paths may not go through symlinks, even inside the credentials directory";
  const std::string real_root = fs::canonical(t.root).string();
  const std::vector<Row> rows = {
      {"acme/key.pem", "", ""},
      {"./acme/./key.pem", "", ""},
      {"", "the key path is empty", place},
      {"/etc/shadow",
       "absolute paths are refused ('/etc/shadow'); write the file name relative to the credentials directory, e.g. "
       "'acme/apiclient_key.pem'",
       place},
      {"../secret.pem",
       "'..' is refused in key paths ('../secret.pem'); keys must stay inside the credentials directory", place},
      {"acme/../../secret.pem",
       "'..' is refused in key paths ('acme/../../secret.pem'); keys must stay inside the credentials directory",
       place},
      {"missing.pem", d + "/missing.pem cannot be opened: No such file or directory", place},
      {"acme/key.pem/x", d + "/acme/key.pem/x cannot be opened: Not a directory", place},
      // Symlinks: out of the directory, as before; inside it too now, final or on the way.
      {"escape.pem",
       d + "/escape.pem resolves to " + real_root + "/secret.pem, outside the credentials directory " + d +
           " ('escape.pem' is a symlink to " + t.root.string() + "/secret.pem; symlinks out of it are refused)",
       "copy the key into the credentials directory instead"},
      {"other-link/x.pem",
       d + "/other-link/x.pem resolves to " + real_root + "/keys-other/x.pem, outside the credentials directory " + d +
           " ('other-link' is a symlink to " + t.root.string() + "/keys-other; symlinks out of it are refused)",
       "copy the key into the credentials directory instead"},
      {"acme/chain.pem",
       d + "/acme/chain.pem resolves to " + real_root + "/secret.pem, outside the credentials directory " + d +
           " ('acme/chain.pem' is a symlink to " + d + "/escape.pem; symlinks out of it are refused)",
       "copy the key into the credentials directory instead"},
      {"inside.pem", d + "/inside.pem: 'inside.pem' is a symlink to acme/key.pem" + no_links,
       "replace the symlink with the file itself, or name the file it points to: 'acme/key.pem'"},
      {"acme-link/key.pem", d + "/acme-link/key.pem: 'acme-link' is a symlink to acme" + no_links,
       "replace the symlink with the file itself, or name the file it points to: 'acme/key.pem'"},
      {"dangling.pem", d + "/dangling.pem: 'dangling.pem' is a symlink to absent.pem" + no_links,
       "replace the symlink with the file itself"},
  };
  for (const auto resolver : kResolvers) {
    for (const auto& row : rows) {
      CAPTURE(row.sql_path, resolver == BeneathResolver::kernel ? "openat2" : "per component");
      auto r = open_credential_file(t.dir(), row.sql_path, resolver);
      if (row.error.empty()) {
        REQUIRE(r.ok());
        CHECK(r.value().path() == d + "/" + row.sql_path);
        CHECK(read_all(r.value().fd()) == "k");
      } else {
        REQUIRE(!r.ok());
        CHECK(r.error().what == row.error);
        CHECK(r.error().fix == row.fix);
      }
    }
  }
}

TEST_CASE("the credentials directory itself may be reached through a symlink", "[credentials]") {
  TempTree t;
  const std::string via_link = (t.root / "keys-via-link").string();
  for (const auto resolver : kResolvers) {
    auto r = open_credential_file(via_link, "acme/key.pem", resolver);
    REQUIRE(r.ok());
    CHECK(r.value().path() == via_link + "/acme/key.pem");
    CHECK(read_all(r.value().fd()) == "k");
    // ... and what lies beneath it is still confined.
    auto escape = open_credential_file(via_link, "escape.pem", resolver);
    REQUIRE_FALSE(escape.ok());
    CHECK(escape.error().what.find("outside the credentials directory " + via_link) != std::string::npos);
  }
}

// What is checked is what is read: the name is looked up once, and the descriptor keeps the
// file that was opened, whatever the path names afterwards.
TEST_CASE("a key file is read through the descriptor it was opened as", "[credentials]") {
  TempTree t;
  for (const auto resolver : kResolvers) {
    auto opened = open_credential_file(t.dir(), "acme/key.pem", resolver);
    REQUIRE(opened.ok());
    // Swap the name: the file is replaced by a symlink to a secret outside, atomically.
    fs::create_symlink(t.root / "secret.pem", t.root / "keys" / "acme" / "swap");
    fs::rename(t.root / "keys" / "acme" / "swap", t.root / "keys" / "acme" / "key.pem");
    CHECK(read_all(opened.value().fd()) == "k");
    // A new open of the same name now sees the symlink and refuses it.
    auto again = open_credential_file(t.dir(), "acme/key.pem", resolver);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().what.find("outside the credentials directory") != std::string::npos);
    fs::remove(t.root / "keys" / "acme" / "key.pem");
    std::ofstream(t.root / "keys" / "acme" / "key.pem") << "k";
  }
}

TEST_CASE("a FIFO or a directory at a key path opens without blocking", "[credentials]") {
  TempTree t;
  REQUIRE(::mkfifo((t.root / "keys" / "fifo.pem").c_str(), 0600) == 0);
  for (const auto resolver : kResolvers) {
    // No writer ever opens the FIFO: a blocking open would hang here.
    auto fifo = open_credential_file(t.dir(), "fifo.pem", resolver);
    REQUIRE(fifo.ok());
    struct stat st {};
    REQUIRE(::fstat(fifo.value().fd(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
    auto folder = open_credential_file(t.dir(), "acme", resolver);
    REQUIRE(folder.ok());
    REQUIRE(::fstat(folder.value().fd(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
  }
}

TEST_CASE("no credentials directory is a clear error", "[credentials]") {
  auto r = open_credential_file("", "a.pem");
  REQUIRE(!r.ok());
  CHECK(r.error().what.find("set credentials_dir") != std::string::npos);
  auto absent = open_credential_file("/nonexistent/creds", "a.pem");
  REQUIRE(!absent.ok());
  CHECK(absent.error().what ==
        "the credentials directory /nonexistent/creds cannot be opened: No such file or directory");
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
    CHECK(problem->fix.starts_with("create it"));
  }
}
