#include "core/file_access.h"

#include <sys/xattr.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace callbackd {
namespace {

constexpr std::uint32_t kAclXattrVersion = 2;  // POSIX_ACL_XATTR_VERSION
constexpr std::size_t kAclHeaderBytes = 4, kAclEntryBytes = 8;
constexpr const char* kAccessAclXattr = "system.posix_acl_access";

std::uint32_t little_endian(std::string_view bytes, std::size_t at, std::size_t width) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < width; ++i)
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return v;
}

bool known_tag(std::uint16_t tag) {
  switch (static_cast<AclTag>(tag)) {
    case AclTag::user_obj:
    case AclTag::user:
    case AclTag::group_obj:
    case AclTag::group:
    case AclTag::mask:
    case AclTag::other:
      return true;
  }
  return false;
}

// As getfacl writes it: "user:1234:r--", "group::r-x", "other::---".
std::string entry_text(const AclEntry& e, std::uint16_t perm) {
  std::string who;
  switch (e.tag) {
    case AclTag::user_obj:
      who = "user:";
      break;
    case AclTag::user:
      who = "user:" + std::to_string(e.id);
      break;
    case AclTag::group_obj:
      who = "group:";
      break;
    case AclTag::group:
      who = "group:" + std::to_string(e.id);
      break;
    case AclTag::mask:
      who = "mask:";
      break;
    case AclTag::other:
      who = "other:";
      break;
  }
  return who + ":" + ((perm & kAclRead) ? "r" : "-") + ((perm & kAclWrite) ? "w" : "-") +
         ((perm & kAclExecute) ? "x" : "-");
}

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

void append_listed(std::string& list, const std::string& item) {
  if (!list.empty()) list += ',';
  list += item;
}

}  // namespace

Result<std::vector<AclEntry>, std::string> parse_posix_acl_xattr(std::string_view value) {
  if (value.size() < kAclHeaderBytes || (value.size() - kAclHeaderBytes) % kAclEntryBytes != 0)
    return "its ACL (" + std::string(kAccessAclXattr) + ") is " + std::to_string(value.size()) +
           " bytes, not a version-2 POSIX ACL";
  if (const auto version = little_endian(value, 0, 4); version != kAclXattrVersion)
    return "its ACL (" + std::string(kAccessAclXattr) + ") has version " + std::to_string(version) + ", not 2";
  std::vector<AclEntry> entries;
  int owners = 0, owning_groups = 0, others = 0, masks = 0, named = 0;
  for (std::size_t at = kAclHeaderBytes; at < value.size(); at += kAclEntryBytes) {
    const auto tag = static_cast<std::uint16_t>(little_endian(value, at, 2));
    if (!known_tag(tag)) return "its ACL has an entry of unknown tag " + std::to_string(tag);
    const AclEntry e{static_cast<AclTag>(tag), static_cast<std::uint16_t>(little_endian(value, at + 2, 2) & 07),
                     little_endian(value, at + 4, 4)};
    owners += e.tag == AclTag::user_obj;
    owning_groups += e.tag == AclTag::group_obj;
    others += e.tag == AclTag::other;
    masks += e.tag == AclTag::mask;
    named += e.tag == AclTag::user || e.tag == AclTag::group;
    entries.push_back(e);
  }
  // The kernel only stores valid ACLs (posix_acl_valid); anything else is not what it seems.
  if (owners != 1 || owning_groups != 1 || others != 1 || masks > 1 || (named > 0 && masks == 0))
    return std::string(
        "its ACL is not a valid POSIX ACL (it needs one user::, group:: and other:: entry, and a mask:: with named entries)");
  return entries;
}

Result<std::vector<AclEntry>, std::string> read_access_acl(int fd) {
  // A POSIX ACL of the kernel's maximum (32 entries on most file systems) fits 260 bytes; the
  // loop only matters for file systems that allow more, or an ACL growing between the calls.
  std::string value(4 + 32 * 8, '\0');
  for (int attempt = 0; attempt < 4; ++attempt) {
    const ssize_t got = ::fgetxattr(fd, kAccessAclXattr, value.data(), value.size());
    if (got >= 0) {
      value.resize(static_cast<std::size_t>(got));
      return parse_posix_acl_xattr(value);
    }
    const int err = errno;
    if (err == ENODATA || err == ENOTSUP) return std::vector<AclEntry>{};
    if (err != ERANGE) return std::string("its ACL cannot be read: ") + std::strerror(err);
    const ssize_t size = ::fgetxattr(fd, kAccessAclXattr, nullptr, 0);
    if (size < 0) continue;  // ENODATA now, or another error: the next attempt reports it
    value.assign(static_cast<std::size_t>(size), '\0');
  }
  return std::string("its ACL cannot be read: it keeps changing size");
}

std::optional<Exposure> private_file_exposure(const FileAccess& file, uid_t daemon_uid, const std::string& path) {
  const std::string too_open = "permissions " + mode_text(file.mode) + " are too open: ";
  if (file.acl.empty()) {
    if ((file.mode & 077) == 0) return std::nullopt;
    return Exposure{too_open + "a private key must not be accessible by group or others", "chmod 600 " + path};
  }

  // With an ACL the group-class entries (named users, the owning group, named groups) grant at
  // most what the mask allows; the owner and other are not masked.
  std::uint16_t mask = kAclRead | kAclWrite | kAclExecute;
  for (const auto& e : file.acl)
    if (e.tag == AclTag::mask) mask = e.perm;
  std::string granted, remove, modify;  // for the message, `setfacl -x`, `setfacl -m`
  for (const auto& e : file.acl) {
    const std::uint16_t effective = e.tag == AclTag::other ? e.perm : static_cast<std::uint16_t>(e.perm & mask);
    if (effective == 0) continue;
    switch (e.tag) {
      case AclTag::user_obj:
      case AclTag::mask:
        continue;
      case AclTag::user:
        if (e.id == daemon_uid) continue;  // the daemon's own account: what systemd >= 254 writes
        append_listed(remove, "u:" + std::to_string(e.id));
        break;
      case AclTag::group:
        append_listed(remove, "g:" + std::to_string(e.id));
        break;
      case AclTag::group_obj:
        append_listed(modify, "g::-");
        break;
      case AclTag::other:
        append_listed(modify, "o::-");
        break;
    }
    if (!granted.empty()) granted += ", ";
    granted += entry_text(e, effective);
  }
  if (granted.empty()) return std::nullopt;
  // One command that keeps the daemon's entry; `chmod` would instead change the mask, taking
  // the daemon's access away with everybody else's.
  std::string fix = "setfacl";
  if (!remove.empty()) fix += " -x " + remove;
  if (!modify.empty()) fix += " -m " + modify;
  return Exposure{too_open + "its ACL grants " + granted +
                      "; a private key must not be accessible by anyone but its owner and " +
                      "the daemon's user (uid " + std::to_string(daemon_uid) + ")",
                  fix + " " + path};
}

}  // namespace callbackd
