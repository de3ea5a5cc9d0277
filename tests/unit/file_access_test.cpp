// Who may read a private key file: the decision from mode bits, owner, ACL and the daemon's
// uid (table-driven), and the parser of the kernel's ACL format. Real files with real ACLs
// are in wechatpay_keys_test.cpp.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "core/file_access.h"

using namespace callbackd;

namespace {

constexpr std::uint16_t r = kAclRead, rw = kAclRead | kAclWrite, rwx = kAclRead | kAclWrite | kAclExecute, none = 0;
constexpr uid_t kDaemon = 101, kOther = 1234;
constexpr std::uint32_t kGroup = 50;
const std::string kFile = "/creds/k.pem";

AclEntry owner(std::uint16_t perm) { return {AclTag::user_obj, perm, 0}; }
AclEntry user(uid_t id, std::uint16_t perm) { return {AclTag::user, perm, id}; }
AclEntry owning_group(std::uint16_t perm) { return {AclTag::group_obj, perm, 0}; }
AclEntry group(std::uint32_t id, std::uint16_t perm) { return {AclTag::group, perm, id}; }
AclEntry mask(std::uint16_t perm) { return {AclTag::mask, perm, 0}; }
AclEntry other(std::uint16_t perm) { return {AclTag::other, perm, 0}; }

// The kernel's xattr bytes for `entries` (little-endian u32 version, then u16 tag, u16 perm, u32 id).
std::string xattr(const std::vector<AclEntry>& entries, std::uint32_t version = 2) {
  std::string out;
  auto put = [&](std::uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put(version, 4);
  for (const auto& e : entries) {
    put(static_cast<std::uint16_t>(e.tag), 2);
    put(e.perm, 2);
    put(e.id, 4);
  }
  return out;
}

// What systemd >= 254 writes for a LoadCredential= file of a service running as `uid`.
std::vector<AclEntry> systemd_254_acl(uid_t uid) {
  return {owner(r), user(uid, r), owning_group(none), mask(r), other(none)};
}

}  // namespace

TEST_CASE("a private key file: who besides its owner may access it", "[file-access]") {
  const std::string too_open_no_acl = "a private key must not be accessible by group or others";
  const std::string acl_tail =
      "; a private key must not be accessible by anyone but its owner and the daemon's user (uid 101)";
  struct Row {
    const char* name;
    mode_t mode;
    uid_t owner;
    std::vector<AclEntry> acl;
    std::optional<Exposure> expected;  // nullopt: accepted
  };
  const std::vector<Row> rows = {
      // Without an ACL: the mode bits, as OpenSSH and as before.
      {"0600, daemon's own file", 0100600, kDaemon, {}, std::nullopt},
      {"0400, systemd 252 (chowned to the dynamic user)", 0100400, kDaemon, {}, std::nullopt},
      {"0400 root's (the daemon reads it only if it is root)", 0100400, 0, {}, std::nullopt},
      {"0644",
       0100644,
       kDaemon,
       {},
       Exposure{"permissions 0644 are too open: " + too_open_no_acl, "chmod 600 " + kFile}},
      {"0640",
       0100640,
       kDaemon,
       {},
       Exposure{"permissions 0640 are too open: " + too_open_no_acl, "chmod 600 " + kFile}},
      {"0440 without an ACL is the owning group",
       0100440,
       0,
       {},
       Exposure{"permissions 0440 are too open: " + too_open_no_acl, "chmod 600 " + kFile}},
      {"0604",
       0100604,
       kDaemon,
       {},
       Exposure{"permissions 0604 are too open: " + too_open_no_acl, "chmod 600 " + kFile}},
      {"0610 (execute counts)",
       0100610,
       kDaemon,
       {},
       Exposure{"permissions 0610 are too open: " + too_open_no_acl, "chmod 600 " + kFile}},
      // systemd >= 254: 0400 root's, the service's uid named in the ACL, stat shows the mask: 0440.
      {"systemd >= 254: the daemon's uid named", 0100440, 0, systemd_254_acl(kDaemon), std::nullopt},
      {"the daemon's uid named with rwx",
       0100470,
       0,
       {owner(r), user(kDaemon, rwx), owning_group(none), mask(rwx), other(none)},
       std::nullopt},
      {"the same ACL read by another daemon uid", 0100440, 0, systemd_254_acl(kOther),
       Exposure{"permissions 0440 are too open: its ACL grants user:1234:r--" + acl_tail,
                "setfacl -x u:1234 " + kFile}},
      {"another named user besides the daemon",
       0100440,
       0,
       {owner(r), user(kDaemon, r), user(kOther, r), owning_group(none), mask(r), other(none)},
       Exposure{"permissions 0440 are too open: its ACL grants user:1234:r--" + acl_tail,
                "setfacl -x u:1234 " + kFile}},
      {"a named group",
       0100440,
       0,
       {owner(r), user(kDaemon, r), owning_group(none), group(kGroup, r), mask(r), other(none)},
       Exposure{"permissions 0440 are too open: its ACL grants group:50:r--" + acl_tail, "setfacl -x g:50 " + kFile}},
      // With an ACL the group bits are the mask: the owning group's own entry says what it may do.
      {"the owning group may read",
       0100440,
       0,
       {owner(r), user(kDaemon, r), owning_group(r), mask(r), other(none)},
       Exposure{"permissions 0440 are too open: its ACL grants group::r--" + acl_tail, "setfacl -m g::- " + kFile}},
      {"others may read",
       0100444,
       0,
       {owner(r), user(kDaemon, r), owning_group(none), mask(r), other(r)},
       Exposure{"permissions 0444 are too open: its ACL grants other::r--" + acl_tail, "setfacl -m o::- " + kFile}},
      {"everything at once, in one command",
       0100466,
       0,
       {owner(rw), user(kDaemon, r), user(kOther, rw), owning_group(r), group(kGroup, r), mask(rw), other(rw)},
       Exposure{"permissions 0466 are too open: its ACL grants user:1234:rw-, group::r--, group:50:r--, other::rw-" +
                    acl_tail,
                "setfacl -x u:1234,g:50 -m g::-,o::- " + kFile}},
      // The mask takes away what a group-class entry would grant: shown and refused as effective.
      {"a named group the mask leaves nothing",
       0100440,
       0,
       {owner(rw), user(kDaemon, r), owning_group(none), group(kGroup, kAclWrite), mask(r), other(none)},
       std::nullopt},
      {"another user the mask cuts to read",
       0100440,
       0,
       {owner(rw), user(kDaemon, r), user(kOther, rwx), owning_group(none), mask(r), other(none)},
       Exposure{"permissions 0440 are too open: its ACL grants user:1234:r--" + acl_tail,
                "setfacl -x u:1234 " + kFile}},
      // A minimal ACL (no named entries, no mask) is the mode bits again.
      {"a minimal ACL, private", 0100600, kDaemon, {owner(rw), owning_group(none), other(none)}, std::nullopt},
      {"a minimal ACL, group readable",
       0100640,
       kDaemon,
       {owner(rw), owning_group(r), other(none)},
       Exposure{"permissions 0640 are too open: its ACL grants group::r--" + acl_tail, "setfacl -m g::- " + kFile}},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    const auto exposure = private_file_exposure(FileAccess{row.mode, row.owner, row.acl}, kDaemon, kFile);
    if (!row.expected) {
      CHECK_FALSE(exposure.has_value());
      continue;
    }
    REQUIRE(exposure.has_value());
    CHECK(exposure->what == row.expected->what);
    CHECK(exposure->fix == row.expected->fix);
  }
}

TEST_CASE("the kernel's POSIX ACL xattr: parsed, or refused when it is not one", "[file-access]") {
  SECTION("systemd >= 254's ACL round-trips") {
    const auto parsed = parse_posix_acl_xattr(xattr(systemd_254_acl(kDaemon)));
    REQUIRE(parsed.ok());
    CHECK(parsed.value() == systemd_254_acl(kDaemon));
  }
  SECTION("little-endian ids above 16 bits") {
    const auto parsed = parse_posix_acl_xattr(xattr(systemd_254_acl(0x12345678)));
    REQUIRE(parsed.ok());
    CHECK(parsed.value()[1] == user(0x12345678, r));
  }
  struct Row {
    const char* name;
    std::string value;
    std::string error;
  };
  const std::string valid = xattr(systemd_254_acl(kDaemon));
  const std::vector<Row> rows = {
      {"empty", "", "its ACL (system.posix_acl_access) is 0 bytes, not a version-2 POSIX ACL"},
      {"cut inside an entry", valid.substr(0, valid.size() - 3),
       "its ACL (system.posix_acl_access) is 41 bytes, not a version-2 POSIX ACL"},
      {"version 1", xattr(systemd_254_acl(kDaemon), 1), "its ACL (system.posix_acl_access) has version 1, not 2"},
      {"an unknown tag", xattr({owner(r), AclEntry{static_cast<AclTag>(0x40), r, 0}, owning_group(none), other(none)}),
       "its ACL has an entry of unknown tag 64"},
      {"a named user without a mask", xattr({owner(r), user(kOther, r), owning_group(none), other(none)}),
       "its ACL is not a valid POSIX ACL (it needs one user::, group:: and other:: entry, and a mask:: with named entries)"},
      {"no other:: entry", xattr({owner(r), owning_group(none)}),
       "its ACL is not a valid POSIX ACL (it needs one user::, group:: and other:: entry, and a mask:: with named entries)"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    const auto parsed = parse_posix_acl_xattr(row.value);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error() == row.error);
  }
}
