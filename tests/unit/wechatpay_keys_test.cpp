// Key loading: every failure is a distinct KeyError whose message names the file and whose fix
// says what to do; the happy paths accept PKCS#8 and PKCS#1, public keys and certificates.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "../support/acl.h"
#include "core/file_access.h"
#include "core/wechatpay/keys.h"
#include "core/wechatpay/signing.h"
#include "wechatpay_test_support.h"

using namespace callbackd;
using namespace callbackd::wechatpay;
using callbackd::test::key_path;
using callbackd::test::read_file;
using callbackd::test::vector_path;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;

TEST_CASE("private keys load from PKCS#8 and PKCS#1 PEM files with mode 0600 or 0400", "[wechatpay][keys]") {
  test::TempDir dir;
  for (const auto& [name, source] : {std::pair{"pkcs8.pem", vector_path("go_test_private_key.pem")},
                                     std::pair{"pkcs1.pem", key_path("go_test_private_key_pkcs1.pem")}}) {
    for (mode_t mode : {mode_t{0600}, mode_t{0400}}) {
      CAPTURE(name, mode);
      const auto key = load_private_key_file(dir.write(name, read_file(source), mode));
      REQUIRE(key.ok());
      CHECK(key->bits() == 2048);
    }
  }
}

TEST_CASE("private key files: each failure has its own kind, message and fix", "[wechatpay][keys]") {
  test::TempDir dir;
  struct Row {
    const char* file;  // fixture under tests/data/keys, or a vector
    mode_t mode;
    KeyError::Kind kind;
    const char* what;  // the message after "PATH: "
    const char* fix;   // the fix; "{}" stands for the path
  };
  const std::string go_pem = read_file(vector_path("go_test_private_key.pem"));
  const Row rows[] = {
      {"vector", 0644, KeyError::Kind::too_open,
       "permissions 0644 are too open: a private key must not be accessible by group or others", "chmod 600 {}"},
      {"vector", 0640, KeyError::Kind::too_open,
       "permissions 0640 are too open: a private key must not be accessible by group or others", "chmod 600 {}"},
      {"vector", 0604, KeyError::Kind::too_open,
       "permissions 0604 are too open: a private key must not be accessible by group or others", "chmod 600 {}"},
      {"vector", 0610, KeyError::Kind::too_open,
       "permissions 0610 are too open: a private key must not be accessible by group or others", "chmod 600 {}"},
      {"encrypted_pkcs8.pem", 0600, KeyError::Kind::encrypted, "the private key is encrypted with a passphrase",
       "store it unencrypted (e.g. openssl pkey -in KEY -out KEY.plain) and protect it with file permissions or systemd LoadCredential="},
      {"encrypted_pkcs1.pem", 0600, KeyError::Kind::encrypted, "the private key is encrypted with a passphrase",
       "store it unencrypted (e.g. openssl pkey -in KEY -out KEY.plain) and protect it with file permissions or systemd LoadCredential="},
      {"corrupt_private.pem", 0600, KeyError::Kind::corrupt,
       "the private key is corrupt (its RSA components do not fit together)",
       "download the key again from the merchant platform"},
      {"truncated_private.pem", 0600, KeyError::Kind::corrupt, "the PEM private key is corrupt (cannot be decoded)",
       "download the key again from the merchant platform"},
      {"not_pem.txt", 0600, KeyError::Kind::corrupt,
       "is not a PEM private key (no \"-----BEGIN PRIVATE KEY-----\" block)",
       "use the merchant API private key in PEM form (PKCS#8 or PKCS#1)"},
      {"go_test_cert.pem", 0600, KeyError::Kind::not_a_key, "contains a certificate, not a private key",
       "use apiclient_key.pem, not apiclient_cert.pem"},
      {"go_test_public_key.pem", 0600, KeyError::Kind::not_a_key, "contains a public key, not a private key",
       "use the merchant API private key (apiclient_key.pem)"},
      // Public material at 0644 is the wrong file, not a leaked key: that is what is reported.
      {"go_test_cert.pem", 0644, KeyError::Kind::not_a_key, "contains a certificate, not a private key",
       "use apiclient_key.pem, not apiclient_cert.pem"},
      {"go_test_public_key.pem", 0644, KeyError::Kind::not_a_key, "contains a public key, not a private key",
       "use the merchant API private key (apiclient_key.pem)"},
      // A damaged private key readable by others is still first of all exposed.
      {"truncated_private.pem", 0644, KeyError::Kind::too_open,
       "permissions 0644 are too open: a private key must not be accessible by group or others", "chmod 600 {}"},
      {"ec_p256.pem", 0600, KeyError::Kind::wrong_type, "the private key is of type EC, WeChat Pay v3 needs RSA",
       "use the RSA 2048 key from the WeChat Pay merchant platform"},
      {"rsa1024.pem", 0600, KeyError::Kind::wrong_type,
       "the private key is RSA 1024 bits, WeChat Pay v3 needs at least 2048",
       "use the RSA 2048 key from the WeChat Pay merchant platform"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.file, row.mode);
    const std::string content = std::string(row.file) == "vector" ? go_pem : read_file(key_path(row.file));
    const std::string path =
        dir.write(std::string("k_") + std::to_string(row.mode) + "_" + row.file, content, row.mode);
    const auto key = load_private_key_file(path);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().kind == row.kind);
    CHECK_THAT(key.error().message, Equals(path + ": " + row.what));
    std::string fix = row.fix;
    if (auto at = fix.find("{}"); at != std::string::npos) fix.replace(at, 2, path);
    CHECK_THAT(key.error().fix, Equals(fix));
  }
}

TEST_CASE("private key files: missing, a directory, too large, unreadable", "[wechatpay][keys]") {
  test::TempDir dir;
  const std::string missing = (dir.path() / "nope.pem").string();
  auto key = load_private_key_file(missing);
  CHECK(key.error().kind == KeyError::Kind::missing);
  CHECK_THAT(key.error().message, Equals(missing + ": no such file"));

  const auto folder = dir.path() / "folder";
  std::filesystem::create_directory(folder);
  key = load_private_key_file(folder.string());
  CHECK(key.error().kind == KeyError::Kind::unreadable);
  CHECK_THAT(key.error().message, Equals(folder.string() + ": is not a regular file"));

  // A FIFO planted at the path must not hang start-up.
  const auto fifo = dir.path() / "fifo.pem";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  key = load_private_key_file(fifo.string());
  CHECK(key.error().kind == KeyError::Kind::unreadable);
  CHECK_THAT(key.error().message, Equals(fifo.string() + ": is not a regular file"));

  const std::string big = dir.write("big.pem", std::string(2 * 1024 * 1024, 'A'), 0600);
  key = load_private_key_file(big);
  CHECK(key.error().kind == KeyError::Kind::unreadable);
  CHECK_THAT(key.error().message, Equals(big + ": is 2097152 bytes, too large for a PEM key (limit 1 MiB)"));

  if (::geteuid() != 0) {  // root reads mode-000 files, so this case only means something as a user
    const std::string locked = dir.write("locked.pem", read_file(vector_path("go_test_private_key.pem")), 0000);
    key = load_private_key_file(locked);
    CHECK(key.error().kind == KeyError::Kind::unreadable);
    CHECK_THAT(key.error().message, StartsWith(locked + ": cannot be opened: "));
  }
}

namespace {
// The descriptor a key is read through, closed at the end of the scope.
struct OpenFile {
  int fd;
  explicit OpenFile(const std::string& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) { REQUIRE(fd >= 0); }
  ~OpenFile() { ::close(fd); }
};
}  // namespace

// systemd >= 254 hands a LoadCredential= file over as 0400, root's, with an ACL entry
// `user:<service uid>:r--`; stat then shows 0440. Real files, ACLs set with setfacl.
TEST_CASE("a private key as systemd >= 254 writes it loads: 0400, the daemon's uid in its ACL, shown as 0440",
          "[wechatpay][keys][acl]") {
  test::TempDir dir;
  if (const std::string reason = test::acl_unavailable_reason(dir.path()); !reason.empty()) {
    WARN("skipped, ACLs cannot be tested here: " << reason);
    return;
  }
  const std::string path = dir.write("credential.pem", read_file(vector_path("go_test_private_key.pem")), 0400);
  REQUIRE(test::setfacl("-m u:" + std::to_string(::geteuid()) + ":r", path).status == 0);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0440);  // the world as systemd >= 254 shapes it
  const auto key = load_private_key_file(path);
  INFO((key.ok() ? std::string("loaded") : key.error().message));
  CHECK(key.ok());
}

TEST_CASE("private keys with a POSIX ACL: only the daemon's uid may be named (real files)", "[wechatpay][keys][acl]") {
  test::TempDir dir;
  if (const std::string reason = test::acl_unavailable_reason(dir.path()); !reason.empty()) {
    WARN("skipped, ACLs cannot be tested here: " << reason);
    return;
  }
  const std::string pem = read_file(vector_path("go_test_private_key.pem"));

  {  // the kernel's own bytes parse into the entries getfacl shows
    const std::string path = dir.write("parsed.pem", pem, 0400);
    REQUIRE(test::setfacl("-m u:4242:r,g:4343:rw", path).status == 0);
    const OpenFile file(path);
    const auto acl = read_access_acl(file.fd);
    REQUIRE(acl.ok());
    const std::vector<AclEntry> expected = {{AclTag::user_obj, kAclRead, 0xffffffff},
                                            {AclTag::user, kAclRead, 4242},
                                            {AclTag::group_obj, 0, 0xffffffff},
                                            {AclTag::group, kAclRead | kAclWrite, 4343},
                                            {AclTag::mask, kAclRead | kAclWrite, 0xffffffff},
                                            {AclTag::other, 0, 0xffffffff}};
    CHECK(acl.value() == expected);
    // A file without an ACL has none (ENODATA), not an error.
    const OpenFile plain(dir.write("plain.pem", pem, 0600));
    const auto none = read_access_acl(plain.fd);
    REQUIRE(none.ok());
    CHECK(none.value().empty());
  }

  // The daemon runs as uid 4242 here (read_private_key's `daemon_uid`); each row grants a
  // second account, is refused with the fix, and the fix, run as given, makes it load.
  struct Row {
    const char* name;
    const char* setfacl;  // on a 0400 file, besides u:4242:r
    const char* what;     // after "PATH: "
    const char* fix;      // "{}" stands for the path
  };
  const Row rows[] = {
      {"another named user", "-m u:4242:r,u:4343:r",
       "permissions 0440 are too open: its ACL grants user:4343:r--; a private key must not be accessible by anyone but "
       "its owner and the daemon's user (uid 4242)",
       "setfacl -x u:4343 {}"},
      {"a named group", "-m u:4242:r,g:4343:r",
       "permissions 0440 are too open: its ACL grants group:4343:r--; a private key must not be accessible by anyone but "
       "its owner and the daemon's user (uid 4242)",
       "setfacl -x g:4343 {}"},
      {"the owning group", "-m u:4242:r,g::r",
       "permissions 0440 are too open: its ACL grants group::r--; a private key must not be accessible by anyone but its "
       "owner and the daemon's user (uid 4242)",
       "setfacl -m g::- {}"},
      {"others", "-m u:4242:r,o::r",
       "permissions 0444 are too open: its ACL grants other::r--; a private key must not be accessible by anyone but its "
       "owner and the daemon's user (uid 4242)",
       "setfacl -m o::- {}"},
  };
  int n = 0;
  for (const auto& row : rows) {
    CAPTURE(row.name);
    const std::string path = dir.write("k" + std::to_string(n++) + ".pem", pem, 0400);
    const auto set = test::setfacl(row.setfacl, path);
    INFO(set.output);
    REQUIRE(set.status == 0);
    {
      const OpenFile file(path);
      const auto key = read_private_key(file.fd, path, 4242);
      REQUIRE_FALSE(key.ok());
      CHECK(key.error().kind == KeyError::Kind::too_open);
      CHECK_THAT(key.error().message, Equals(path + ": " + row.what));
      std::string fix = row.fix;
      fix.replace(fix.find("{}"), 2, path);
      CHECK_THAT(key.error().fix, Equals(fix));
      REQUIRE(std::system(fix.c_str()) == 0);
    }
    const OpenFile fixed(path);
    const auto key = read_private_key(fixed.fd, path, 4242);
    INFO((key.ok() ? std::string("loaded") : key.error().message));
    CHECK(key.ok());
    // The same ACL, read by an account it does not name, is still refused: only the daemon's uid counts.
    CHECK(read_private_key(fixed.fd, path, 4343).error().message.find("user:4242:r--") != std::string::npos);
  }
}

TEST_CASE("verification keys: public key (SPKI and PKCS#1) and certificates", "[wechatpay][keys]") {
  const auto spki = parse_verification_key_pem(read_file(key_path("go_test_public_key.pem")), "pub");
  REQUIRE(spki.ok());
  CHECK_FALSE(spki->certificate().has_value());
  CHECK(spki->bits() == 2048);

  const auto pkcs1 = parse_verification_key_pem(read_file(key_path("go_test_public_key_pkcs1.pem")), "pub1");
  REQUIRE(pkcs1.ok());

  const auto cert = parse_verification_key_pem(read_file(key_path("go_test_cert.pem")), "cert");
  REQUIRE(cert.ok());
  REQUIRE(cert->certificate().has_value());
  CHECK(cert->certificate()->serial_hex == "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
  CHECK(cert->certificate()->not_before < cert->certificate()->not_after);

  // Files need no particular mode: they are public.
  test::TempDir dir;
  CHECK(load_verification_key_file(dir.write("p.pem", read_file(key_path("go_test_public_key.pem")), 0644)).ok());
}

TEST_CASE("verification key files: each failure has its own kind and message", "[wechatpay][keys]") {
  struct Row {
    const char* file;
    KeyError::Kind kind;
    const char* what;
  };
  const Row rows[] = {
      {"go_test_private_key_pkcs1.pem", KeyError::Kind::not_a_key,
       "contains a private key where a public key or certificate is expected"},
      {"not_pem.txt", KeyError::Kind::not_a_key,
       "is not a PEM public key or certificate (no \"-----BEGIN PUBLIC KEY-----\" or \"-----BEGIN CERTIFICATE-----\" block)"},
      {"corrupt_cert.pem", KeyError::Kind::corrupt, "the PEM certificate is corrupt (cannot be decoded)"},
      {"ec_p256_public.pem", KeyError::Kind::wrong_type, "the public key is of type EC, WeChat Pay v3 needs RSA"},
      {"rsa1024_public.pem", KeyError::Kind::wrong_type,
       "the public key is RSA 1024 bits, WeChat Pay v3 needs at least 2048"},
  };
  test::TempDir dir;
  for (const auto& row : rows) {
    CAPTURE(row.file);
    const std::string path = dir.write(row.file, read_file(key_path(row.file)), 0644);
    const auto key = load_verification_key_file(path);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().kind == row.kind);
    CHECK_THAT(key.error().message, Equals(path + ": " + row.what));
  }
  const auto missing = load_verification_key_file((dir.path() / "absent.pem").string());
  CHECK(missing.error().kind == KeyError::Kind::missing);

  // A corrupt public key body (valid armour, broken DER).
  const auto broken = parse_verification_key_pem(
      "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n", "mem");
  CHECK(broken.error().kind == KeyError::Kind::corrupt);
  CHECK_THAT(broken.error().message, Equals("mem: the PEM public key is corrupt (cannot be decoded)"));
}

TEST_CASE("keys_match pairs a private key with its public key or certificate", "[wechatpay][keys]") {
  const PrivateKey go = test::go_test_private_key();
  const PrivateKey second = test::private_key_fixture("second_rsa2048.pem");
  CHECK(keys_match(go, test::verification_key_fixture("go_test_public_key.pem")));
  CHECK(keys_match(go, test::verification_key_fixture("go_test_public_key_pkcs1.pem")));
  CHECK(keys_match(go, test::verification_key_fixture("go_test_cert.pem")));
  CHECK_FALSE(keys_match(go, test::verification_key_fixture("second_public.pem")));
  CHECK_FALSE(keys_match(second, test::verification_key_fixture("go_test_cert.pem")));
  CHECK(keys_match(second, test::verification_key_fixture("second_cert.pem")));

  const auto half = public_half(go);
  REQUIRE(half.ok());
  CHECK(keys_match(go, half.value()));
  const std::string message = "hello\n";
  CHECK(verify_sha256_rsa(half.value(), message, sign_sha256_rsa(go, message).value()) == SignatureCheck::valid);
}

TEST_CASE("KeyError converts to a Problem for start-up errors", "[wechatpay][keys]") {
  const auto key = parse_private_key_pem("junk", "/etc/callbackd/creds/acme.pem");
  const Problem p = key.error().to_problem();
  CHECK(p.to_string() ==
        "/etc/callbackd/creds/acme.pem: is not a PEM private key (no \"-----BEGIN PRIVATE KEY-----\" block) "
        "(fix: use the merchant API private key in PEM form (PKCS#8 or PKCS#1))");
}
