// Platform certificates (docs/wechatpay-v3.md section 4a): the answer of GET /v3/certificates,
// decrypted with the merchant's APIv3 key, checked, and judged trustworthy or not. Pure: the
// caller brings the answer's bytes and headers, the key, the certificates the tenant already
// trusts and `now`; nothing here does I/O.
//
// Trust, stricter than the official SDKs (which check a download, if at all, only with a
// certificate taken from that same download): an answer is accepted only when its signature
// verifies under a certificate it carries AND, once the tenant trusts any certificate, under
// one it already trusts. So after the first download an attacker who can answer in WeChat
// Pay's name but does not hold a trusted platform key cannot slip a certificate of their own
// in. With a platform CA (wechatpay.platform_ca_file), every certificate must also chain to it,
// which covers the first download too.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>

#include "core/error.h"
#include "core/wechatpay/keys.h"
#include "core/wechatpay/verification.h"

namespace callbackd::wechatpay {

inline constexpr std::string_view kCertificatesPath = "/v3/certificates";
inline constexpr std::string_view kAeadAlgorithm = "AEAD_AES_256_GCM";
inline constexpr std::size_t kApiV3KeyBytes = 32;
inline constexpr std::size_t kGcmNonceBytes = 12;
inline constexpr std::size_t kGcmTagBytes = 16;

// The merchant's APIv3 key: 32 bytes, set by the merchant on the merchant platform (usually 32
// printable characters). Only decrypts; never sent anywhere.
class ApiV3Key {
 public:
  using Bytes = std::array<unsigned char, kApiV3KeyBytes>;
  explicit ApiV3Key(const Bytes& bytes) : bytes_(bytes) {}
  const Bytes& bytes() const noexcept { return bytes_; }

 private:
  Bytes bytes_;
};

// The key from a file's bytes: exactly 32 bytes, or 32 followed by one line ending ("\n" or
// "\r\n", as `echo KEY > FILE` or an editor leaves it), which is not part of the key.
// `source` names the file in messages. Errors are KeyError::Kind::corrupt, saying the length.
Result<ApiV3Key, KeyError> parse_apiv3_key(std::string_view file_bytes, std::string_view source);

// AES-256-GCM as WeChat Pay uses it: `nonce` and `associated_data` are the strings of the
// answer, used as bytes; `ciphertext_base64` is base64 of the ciphertext with the 16-byte tag
// appended. nullopt when the tag does not verify (wrong key, tampered bytes, wrong AAD or
// nonce), the base64 is broken, or the nonce is not 12 bytes.
struct AeadFailure {
  enum class Kind { bad_base64, bad_nonce, too_short, bad_tag };
  Kind kind;
  std::string message;
};
Result<std::string, AeadFailure> aead_aes_256_gcm_decrypt(const ApiV3Key& key, std::string_view nonce,
                                                          std::string_view associated_data,
                                                          std::string_view ciphertext_base64);
// The inverse, for the sandbox and tests: base64(ciphertext || tag). `nonce` must be 12 bytes.
Result<std::string, CryptoError> aead_aes_256_gcm_encrypt(const ApiV3Key& key, std::string_view nonce,
                                                          std::string_view associated_data, std::string_view plaintext);

// One data[] entry of the answer, as sent (nothing decrypted or checked yet).
struct EncryptedCertificate {
  std::string serial_no;
  std::string effective_time;  // RFC 3339, informational: the certificate's own times count
  std::string expire_time;
  std::string algorithm;
  std::string nonce;
  std::string associated_data;
  std::string ciphertext;  // base64
};

// Why a download was refused. Each kind names one check, so that the pause reason and the
// metric say which failed; `message` names the certificate (its serial) where there is one.
struct CertificateError {
  enum class Kind {
    malformed_answer,       // not JSON, no data[], a field missing or of the wrong type, data[] empty
    unsupported_algorithm,  // encrypt_certificate.algorithm other than AEAD_AES_256_GCM
    bad_tag,                // AES-GCM refused it: wrong APIv3 key or tampered ciphertext
    not_a_certificate,      // decrypted, but not a PEM X.509 RSA certificate
    serial_mismatch,        // serial_no is not the decrypted certificate's serial
    outside_validity,       // now is before its notBefore or after its notAfter
    untrusted_chain,        // does not chain to wechatpay.platform_ca_file
    signature_invalid,      // the answer is not signed by a certificate it carries (or not at all)
    not_signed_by_trusted,  // signed by a listed certificate the tenant does not trust yet
  };
  Kind kind;
  std::string message;
  std::string fix;
};

// Stable snake_case name of a kind ("bad_tag", …), for metrics and pause reasons.
std::string_view certificate_error_name(CertificateError::Kind kind);

// The entries of a /v3/certificates answer body. Refuses (malformed_answer) a body that is
// not the documented shape, or that lists no certificate.
Result<std::vector<EncryptedCertificate>, CertificateError> parse_certificates_answer(std::string_view body);

// A platform certificate that passed every check, with its PEM for storage.
struct PlatformCertificate {
  std::string serial;  // uppercase hex, as the certificate says
  std::chrono::system_clock::time_point effective;
  std::chrono::system_clock::time_point expiry;
  std::string pem;
  VerificationKey key;
};

// A CA that platform certificates must chain to (wechatpay.platform_ca_file). Immutable,
// shareable between threads.
class PlatformCa {
 public:
  // Every CERTIFICATE block of `pem`; KeyError (corrupt) when there is none or one is broken.
  static Result<PlatformCa, KeyError> parse(std::string_view pem, std::string_view source);
  // True when `certificate_pem` chains to one of the CA certificates, checked at `now`.
  bool issued(std::string_view certificate_pem, std::chrono::system_clock::time_point now) const;

 private:
  explicit PlatformCa(std::shared_ptr<X509_STORE> store) : store_(std::move(store)) {}
  std::shared_ptr<X509_STORE> store_;
};

// PlatformCa::parse of a file (wechatpay.platform_ca_file): the one function here that reads
// a file. KeyError names the file: unreadable, or what parse refuses.
Result<PlatformCa, KeyError> load_platform_ca_file(const std::string& path);

// A certificate from its PEM (as stored), without the download's checks: the serial and times
// come from the certificate itself.
Result<PlatformCertificate, KeyError> platform_certificate_from_pem(std::string pem, std::string_view source);

// Decrypts one entry and checks it: algorithm, tag, PEM certificate, serial, validity at `now`,
// and the chain when `ca` is given (nullptr: no CA configured).
Result<PlatformCertificate, CertificateError> open_certificate(const EncryptedCertificate& entry, const ApiV3Key& key,
                                                               std::chrono::system_clock::time_point now,
                                                               const PlatformCa* ca);

// The trust decision alone: the answer (`headers`, `raw_body`) must verify under `carried`
// (the certificates it lists) and, unless `trusted` is empty, under `trusted` (what the tenant
// trusts already). On success, the serial that signed it.
Result<std::string, CertificateError> judge_download_signature(const KeySet& carried, const KeySet& trusted,
                                                               const ResponseHeaders& headers,
                                                               std::string_view raw_body,
                                                               std::chrono::system_clock::time_point now);

// The whole of it: parse, open every entry (any entry refused refuses the answer: one bad
// entry means a wrong key or a tampered answer, and half a download is not a state to trust),
// then judge the signature. On success, every certificate of the answer.
Result<std::vector<PlatformCertificate>, CertificateError> accept_download(std::string_view raw_body,
                                                                           const ResponseHeaders& headers,
                                                                           const ApiV3Key& key, const KeySet& trusted,
                                                                           std::chrono::system_clock::time_point now,
                                                                           const PlatformCa* ca);

// What one GET /v3/certificates came to, for the engine: whether to keep the certificates,
// pause the tenant (with the code and the reason an operator reads) or try again later.
struct DownloadVerdict {
  enum class Kind {
    accepted,                 // `certificates` are trusted
    no_platform_certificate,  // 404: a public-key merchant configured in certificate mode
    refused,                  // a check failed, or WeChat Pay refused the call (401/403): pause
    transient,                // 429, 5xx, an answer from something else: try again later
  };
  Kind kind = Kind::transient;
  std::vector<PlatformCertificate> certificates;
  std::string code;     // the pause's error code: NO_PLATFORM_CERTIFICATE, PLATFORM_CERTIFICATE_REFUSED, SIGN_ERROR…
  std::string reason;   // what happened and the fix, for the pause and the log
  std::string outcome;  // a short label for metrics: accepted, not_found, bad_tag, …, http_503
};

// Judges a /v3/certificates answer (`status`, `body`, `headers`) with accept_download.
DownloadVerdict judge_certificates_download(int status, std::string_view body, const ResponseHeaders& headers,
                                            const ApiV3Key& key, const KeySet& trusted,
                                            std::chrono::system_clock::time_point now, const PlatformCa* ca);

// The sandbox's side: the answer body for `certificates` (PEM each), encrypted with `key`.
// `nonce_for(i)` gives entry i's 12-byte nonce.
struct CertificateToList {
  std::string serial_no;
  std::string effective_time;
  std::string expire_time;
  std::string pem;
};
Result<std::string, CryptoError> certificates_answer(const std::vector<CertificateToList>& certificates,
                                                     const ApiV3Key& key, const std::vector<std::string>& nonces);

}  // namespace callbackd::wechatpay
