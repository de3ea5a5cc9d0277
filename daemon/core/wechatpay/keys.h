// Keys of the WeChat Pay v3 protocol, loaded once and shared read-only:
//  - a PrivateKey signs: the tenant's merchant API key (requests), or in the sandbox the
//    platform key (responses);
//  - a VerificationKey verifies: a WeChat Pay public key (public-key mode, id PUB_KEY_ID_...)
//    or a platform certificate (X.509, id = its serial), or in the sandbox the merchant's
//    API certificate / public key.
// Loading never throws: it returns a KeyError whose message names the file and says what is
// wrong and how to fix it. The caller decides whether that stops start-up (StartupError) or
// pauses one tenant.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/types.h>

#include "core/error.h"

namespace callbackd::wechatpay {

struct KeyError {
  enum class Kind {
    missing,          // no such file
    unreadable,       // exists but cannot be read (permissions, a directory, I/O error, too big)
    too_open,         // private key accessible by group, others or (ACL) another account
    encrypted,        // protected by a passphrase: the daemon has no way to ask for one
    corrupt,          // not parseable PEM / DER inside is broken
    not_a_key,        // PEM of the wrong kind (e.g. a certificate where a private key is expected)
    wrong_type,       // not RSA, or RSA smaller than 2048 bits
    mismatch,         // a private key and a public key/certificate that do not belong together
    serial_mismatch,  // a certificate registered under a serial that is not its own
  };
  Kind kind;
  std::string message;  // names the file/source: "/creds/acme.pem: permissions 0644 are too open"
  std::string fix;      // what to do: "chmod 600 /creds/acme.pem" (may be empty)

  Problem to_problem() const { return Problem{"", message, fix}; }
};

class KeyCache;  // key_cache.h

// A failure inside OpenSSL itself (allocation, provider missing). Rare; never contains key bytes.
struct CryptoError {
  std::string message;
};

// An RSA private key of at least 2048 bits. Cheap to copy (shared, immutable); safe to use from
// several threads at once (each signature uses its own EVP_MD_CTX).
class PrivateKey {
 public:
  explicit PrivateKey(std::shared_ptr<EVP_PKEY> pkey) : pkey_(std::move(pkey)) {}
  EVP_PKEY* native() const noexcept { return pkey_.get(); }
  int bits() const noexcept;

 private:
  std::shared_ptr<EVP_PKEY> pkey_;
};

// An RSA public key (>= 2048 bits) that verifies signatures, optionally from an X.509
// certificate. Cheap to copy, immutable, thread-safe.
class VerificationKey {
 public:
  struct Certificate {
    std::string serial_hex;  // uppercase hex, no leading zeros stripped beyond OpenSSL's BN form
    std::chrono::system_clock::time_point not_before;
    std::chrono::system_clock::time_point not_after;
  };
  VerificationKey(std::shared_ptr<EVP_PKEY> pkey, std::optional<Certificate> certificate)
      : pkey_(std::move(pkey)), certificate_(std::move(certificate)) {}
  EVP_PKEY* native() const noexcept { return pkey_.get(); }
  // Present when the key came from an X.509 certificate (platform certificate mode).
  const std::optional<Certificate>& certificate() const noexcept { return certificate_; }
  int bits() const noexcept;

 private:
  std::shared_ptr<EVP_PKEY> pkey_;
  std::optional<Certificate> certificate_;
};

// Reads a private key file (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY" PEM).
// Refuses, like OpenSSH, a file that anybody but its owner and the daemon's user can access:
// "FILE: permissions 0644 are too open ..." with fix "chmod 600 FILE"; with a POSIX ACL, a
// named user other than the daemon's euid, a named group or the owning group is refused with
// the `setfacl` that removes it (core/file_access.h); the daemon's own entry, as systemd >= 254
// writes it (0400 root-owned, `user:UID:r--`, shown as 0440), is accepted.
// Also: missing, unreadable, larger than 1 MiB, encrypted, corrupt, not a private key
// (certificate / public key), not RSA, RSA < 2048 bits.
Result<PrivateKey, KeyError> load_private_key_file(const std::string& path);

// The same through `fd`, already open for reading (e.g. a CredentialFile; not closed here):
// fstat, the ACL and the bytes all come from that descriptor. `path` names the file in
// messages; `daemon_uid` is the account an ACL may name (load_private_key_file: the euid).
// With a `cache`, bytes parsed before at `path` are not parsed and checked again; the file's
// permissions are checked every time all the same.
Result<PrivateKey, KeyError> read_private_key(int fd, const std::string& path, uid_t daemon_uid,
                                              KeyCache* cache = nullptr);

// The bytes of a secret that is not a PEM key (the APIv3 key), through `fd` as read_private_key
// reads: the same size limit and the same refusal of a file others can access.
Result<std::string, KeyError> read_secret_file(int fd, const std::string& path, uid_t daemon_uid);

// The same checks minus the file ones, for PEM already in memory. `source` names it in messages.
Result<PrivateKey, KeyError> parse_private_key_pem(std::string_view pem, std::string_view source);

// Reads a key that verifies signatures: "PUBLIC KEY" (SubjectPublicKeyInfo), "RSA PUBLIC KEY"
// (PKCS#1) or "CERTIFICATE" (X.509) PEM. No permission check (public material).
// Errors: missing, unreadable, corrupt, not_a_key (e.g. a private key or garbage), wrong_type.
Result<VerificationKey, KeyError> load_verification_key_file(const std::string& path);
// The same through `fd`, already open for reading (not closed here); `cache` as for
// read_private_key.
Result<VerificationKey, KeyError> read_verification_key(int fd, const std::string& path, KeyCache* cache = nullptr);
Result<VerificationKey, KeyError> parse_verification_key_pem(std::string_view pem, std::string_view source);

// True when `private_key` is the private half of `public_key` (compares the RSA public
// components). For check-config: a tenant whose private key does not match its API
// certificate gets 401 SIGN_ERROR on every request.
bool keys_match(const PrivateKey& private_key, const VerificationKey& public_key);

// The public half of a private key, e.g. for the sandbox or tests that sign with one key and
// verify with its public key.
Result<VerificationKey, CryptoError> public_half(const PrivateKey& private_key);

}  // namespace callbackd::wechatpay
