// Who besides its owner may read a file that holds a secret (a merchant's private key).
//
// The mode bits alone no longer answer that: systemd >= 254 hands each LoadCredential= file
// over as mode 0400, owned by root, with a POSIX ACL entry `user:<service uid>:r--`, and `stat`
// then shows the ACL's mask in the group bits (0440). So the decision reads the ACL too: the
// daemon's own account may be granted by name; any other named user or group, the owning
// group and others may not. The decision is a pure function of what fstat and the ACL say;
// reading the ACL through an open descriptor is a separate, small function.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace callbackd {

// Tags and permission bits of the kernel's POSIX ACL format (linux/posix_acl.h).
enum class AclTag : std::uint16_t {
  user_obj = 0x01,   // the owner          (user::)
  user = 0x02,       // a named user       (user:UID:)
  group_obj = 0x04,  // the owning group   (group::)
  group = 0x08,      // a named group      (group:GID:)
  mask = 0x10,       // the most any group-class entry grants (mask::)
  other = 0x20,      // everybody else     (other::)
};
inline constexpr std::uint16_t kAclRead = 4, kAclWrite = 2, kAclExecute = 1;

struct AclEntry {
  AclTag tag;
  std::uint16_t perm;  // kAclRead | kAclWrite | kAclExecute
  std::uint32_t id;    // uid or gid for user / group entries, unused otherwise

  bool operator==(const AclEntry&) const = default;
};

// The value of the `system.posix_acl_access` extended attribute as the kernel returns it:
// a little-endian u32 version (2), then entries of {u16 tag, u16 perm, u32 id}. Anything else
// (wrong size, version or tag) is an error: an ACL that cannot be understood is never taken
// to grant nothing.
Result<std::vector<AclEntry>, std::string> parse_posix_acl_xattr(std::string_view value);

// The access ACL of the open file `fd`; empty when it has none (ENODATA) or its file system
// has no ACLs (ENOTSUP). Otherwise an error naming the reason (strerror or the parse error).
Result<std::vector<AclEntry>, std::string> read_access_acl(int fd);

// What fstat and the ACL say about a file.
struct FileAccess {
  mode_t mode = 0;            // st_mode; with an ACL its group bits are the mask
  uid_t owner = 0;            // st_uid
  std::vector<AclEntry> acl;  // empty: no ACL beyond the mode bits
};

// Why a private key file is exposed, worded for the operator: `what` starts with
// "permissions 0NNN are too open", `fix` is one command that closes it ("chmod 600 FILE", or
// with an ACL "setfacl -x u:1234,g:50 -m g::-,o::- FILE", which keeps the daemon's entry).
struct Exposure {
  std::string what;
  std::string fix;

  bool operator==(const Exposure&) const = default;
};

// Whether a private key file may be used by a daemon running as `daemon_uid` (its euid):
// nullopt when nobody but the owner and `daemon_uid` can read, write or execute it. Refused,
// as OpenSSH does: any permission of the owning group or of others; with an ACL also any
// named user other than `daemon_uid` and any named group. A group-class entry whose
// permissions the mask takes away grants nothing and is not refused. `path` names the file
// in the fix.
std::optional<Exposure> private_file_exposure(const FileAccess& file, uid_t daemon_uid, const std::string& path);

}  // namespace callbackd
