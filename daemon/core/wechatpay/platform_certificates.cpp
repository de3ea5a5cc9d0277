#include "core/wechatpay/platform_certificates.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "core/wechatpay/encoding.h"
#include "core/wechatpay/favor_callbacks.h"

namespace callbackd::wechatpay {
namespace {

constexpr std::size_t kExcerptBytes = 64;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;

std::string in_quotes(std::string_view value) { return "\"" + excerpt(value, kExcerptBytes) + "\""; }

CertificateError refuse(CertificateError::Kind kind, std::string message, std::string fix = {}) {
  ERR_clear_error();
  return CertificateError{kind, std::move(message), std::move(fix)};
}

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

BioPtr memory_bio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(std::min<std::size_t>(pem.size(), 1 << 20))), BIO_free);
}

std::vector<X509Ptr> read_certificates(std::string_view pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = memory_bio(pem);
  if (!bio) return out;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(cert, X509_free);
  ERR_clear_error();  // the end of the input reads as an error
  return out;
}

std::string utc_text(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Result<ApiV3Key, KeyError> parse_apiv3_key(std::string_view file_bytes, std::string_view source) {
  std::string_view key = file_bytes;
  if (key.ends_with("\r\n"))
    key.remove_suffix(2);
  else if (key.ends_with('\n'))
    key.remove_suffix(1);
  if (key.size() != kApiV3KeyBytes)
    return KeyError{KeyError::Kind::corrupt,
                    std::string(source) + ": an APIv3 key is 32 bytes, this file holds " + std::to_string(key.size()) +
                        (key.size() != file_bytes.size() ? " (besides its line ending)" : ""),
                    "write the 32-character APIv3 key set on the merchant platform (API安全 > APIv3密钥) into it, "
                    "with no spaces around it"};
  ApiV3Key::Bytes out{};
  std::memcpy(out.data(), key.data(), out.size());
  return ApiV3Key(out);
}

Result<std::string, AeadFailure> aead_aes_256_gcm_decrypt(const ApiV3Key& key, std::string_view nonce,
                                                          std::string_view associated_data,
                                                          std::string_view ciphertext_base64) {
  if (nonce.size() != kGcmNonceBytes)
    return AeadFailure{AeadFailure::Kind::bad_nonce,
                       "nonce is " + std::to_string(nonce.size()) + " bytes, AEAD_AES_256_GCM uses 12"};
  auto sealed = base64_decode(ciphertext_base64);
  if (!sealed) return AeadFailure{AeadFailure::Kind::bad_base64, "ciphertext is not valid base64"};
  if (sealed->size() < kGcmTagBytes)
    return AeadFailure{AeadFailure::Kind::too_short, "ciphertext is shorter than the 16-byte GCM tag"};
  const std::string_view ciphertext(sealed->data(), sealed->size() - kGcmTagBytes);
  std::string tag = sealed->substr(sealed->size() - kGcmTagBytes);

  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  std::string plain(ciphertext.size(), '\0');
  int len = 0;
  int total = 0;
  const bool ok =
      ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()), nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes().data(), bytes(nonce)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(associated_data), static_cast<int>(associated_data.size())) ==
          1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, bytes(ciphertext),
                        static_cast<int>(ciphertext.size())) == 1 &&
      (total = len,
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag.size()), tag.data()) == 1) &&
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + total, &len) == 1;
  ERR_clear_error();
  if (!ok) {
    // Nothing of an unauthenticated plaintext leaves this function.
    OPENSSL_cleanse(plain.data(), plain.size());
    return AeadFailure{AeadFailure::Kind::bad_tag,
                       "the AES-GCM tag does not verify (the APIv3 key is wrong, or the ciphertext, nonce or "
                       "associated_data was altered)"};
  }
  plain.resize(static_cast<std::size_t>(total + len));
  return plain;
}

Result<std::string, CryptoError> aead_aes_256_gcm_encrypt(const ApiV3Key& key, std::string_view nonce,
                                                          std::string_view associated_data,
                                                          std::string_view plaintext) {
  if (nonce.size() != kGcmNonceBytes) return CryptoError{"AEAD_AES_256_GCM needs a 12-byte nonce"};
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  std::string sealed(plaintext.size() + kGcmTagBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(sealed.data());
  int len = 0;
  int total = 0;
  const bool ok =
      ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()), nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes().data(), bytes(nonce)) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(associated_data), static_cast<int>(associated_data.size())) ==
          1 &&
      EVP_EncryptUpdate(ctx.get(), out, &len, bytes(plaintext), static_cast<int>(plaintext.size())) == 1 &&
      (total = len, EVP_EncryptFinal_ex(ctx.get(), out + total, &len) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagBytes), out + plaintext.size()) == 1;
  ERR_clear_error();
  if (!ok) return CryptoError{"AES-256-GCM encryption failed inside OpenSSL"};
  return base64_encode(sealed);
}

std::string_view certificate_error_name(CertificateError::Kind kind) {
  switch (kind) {
    case CertificateError::Kind::malformed_answer:
      return "malformed_answer";
    case CertificateError::Kind::unsupported_algorithm:
      return "unsupported_algorithm";
    case CertificateError::Kind::bad_tag:
      return "bad_tag";
    case CertificateError::Kind::not_a_certificate:
      return "not_a_certificate";
    case CertificateError::Kind::serial_mismatch:
      return "serial_mismatch";
    case CertificateError::Kind::outside_validity:
      return "outside_validity";
    case CertificateError::Kind::untrusted_chain:
      return "untrusted_chain";
    case CertificateError::Kind::signature_invalid:
      return "signature_invalid";
    case CertificateError::Kind::not_signed_by_trusted:
      return "not_signed_by_trusted";
  }
  return "unknown";
}

Result<std::vector<EncryptedCertificate>, CertificateError> parse_certificates_answer(std::string_view body) {
  const auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto malformed = [](std::string what) {
    return refuse(CertificateError::Kind::malformed_answer, "the /v3/certificates answer " + std::move(what));
  };
  if (doc.is_discarded() || !doc.is_object()) return malformed("is not a JSON object");
  const auto data = doc.find("data");
  if (data == doc.end() || !data->is_array()) return malformed("has no data array");
  if (data->empty()) return malformed("lists no certificate");
  std::vector<EncryptedCertificate> out;
  for (std::size_t i = 0; i < data->size(); ++i) {
    const auto& entry = (*data)[i];
    const std::string where = "data[" + std::to_string(i) + "]";
    auto text = [&](const nlohmann::json& object, const char* name, std::string& into,
                    const std::string& path) -> std::optional<CertificateError> {
      const auto it = object.find(name);
      if (it == object.end() || !it->is_string()) return malformed("has no string " + path + "." + name);
      into = it->get<std::string>();
      return std::nullopt;
    };
    if (!entry.is_object()) return malformed("has a " + where + " that is not an object");
    EncryptedCertificate c;
    if (auto bad = text(entry, "serial_no", c.serial_no, where)) return *bad;
    if (auto bad = text(entry, "effective_time", c.effective_time, where)) return *bad;
    if (auto bad = text(entry, "expire_time", c.expire_time, where)) return *bad;
    const auto enc = entry.find("encrypt_certificate");
    if (enc == entry.end() || !enc->is_object()) return malformed("has no object " + where + ".encrypt_certificate");
    const std::string enc_where = where + ".encrypt_certificate";
    if (auto bad = text(*enc, "algorithm", c.algorithm, enc_where)) return *bad;
    if (auto bad = text(*enc, "nonce", c.nonce, enc_where)) return *bad;
    if (auto bad = text(*enc, "associated_data", c.associated_data, enc_where)) return *bad;
    if (auto bad = text(*enc, "ciphertext", c.ciphertext, enc_where)) return *bad;
    out.push_back(std::move(c));
  }
  return out;
}

Result<PlatformCa, KeyError> PlatformCa::parse(std::string_view pem, std::string_view source) {
  const auto certificates = read_certificates(pem);
  if (certificates.empty())
    return KeyError{KeyError::Kind::corrupt, std::string(source) + ": holds no PEM certificate",
                    "point wechatpay.platform_ca_file at the PEM of the CA that issues WeChat Pay's platform "
                    "certificates"};
  std::shared_ptr<X509_STORE> store(X509_STORE_new(), X509_STORE_free);
  if (!store) return KeyError{KeyError::Kind::corrupt, std::string(source) + ": out of memory", ""};
  for (const auto& cert : certificates)
    if (X509_STORE_add_cert(store.get(), cert.get()) != 1) {
      ERR_clear_error();
      return KeyError{KeyError::Kind::corrupt, std::string(source) + ": a certificate cannot be added", ""};
    }
  return PlatformCa(std::move(store));
}

bool PlatformCa::issued(std::string_view certificate_pem, std::chrono::system_clock::time_point now) const {
  auto certificates = read_certificates(certificate_pem);
  if (certificates.empty()) return false;
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store_.get(), certificates.front().get(), nullptr) != 1) {
    ERR_clear_error();
    return false;
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(now));
  const bool ok = X509_verify_cert(ctx.get()) == 1;
  ERR_clear_error();
  return ok;
}

Result<PlatformCa, KeyError> load_platform_ca_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream pem;
  pem << in.rdbuf();
  if (!in)
    return KeyError{KeyError::Kind::unreadable, path + ": cannot be read",
                    "point wechatpay.platform_ca_file at a readable PEM of the CA that issues WeChat Pay's platform "
                    "certificates"};
  return PlatformCa::parse(pem.str(), path);
}

Result<PlatformCertificate, KeyError> platform_certificate_from_pem(std::string pem, std::string_view source) {
  if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    return KeyError{KeyError::Kind::not_a_key, std::string(source) + ": is not a PEM certificate", ""};
  auto key = parse_verification_key_pem(pem, source);
  if (!key) return std::move(key).error();
  const auto& info = *key->certificate();
  return PlatformCertificate{info.serial_hex, info.not_before, info.not_after, std::move(pem), key.value()};
}

Result<PlatformCertificate, CertificateError> open_certificate(const EncryptedCertificate& entry, const ApiV3Key& key,
                                                               std::chrono::system_clock::time_point now,
                                                               const PlatformCa* ca) {
  const std::string which = "certificate " + in_quotes(entry.serial_no);
  if (entry.algorithm != kAeadAlgorithm)
    return refuse(CertificateError::Kind::unsupported_algorithm,
                  which + " is encrypted with " + in_quotes(entry.algorithm) + ", expected AEAD_AES_256_GCM");
  auto plain = aead_aes_256_gcm_decrypt(key, entry.nonce, entry.associated_data, entry.ciphertext);
  if (!plain)
    return refuse(CertificateError::Kind::bad_tag, which + ": " + plain.error().message,
                  "check that apiv3_key_path holds the merchant's current APIv3 key");
  auto certificate = platform_certificate_from_pem(std::move(plain).value(), which);
  if (!certificate) return refuse(CertificateError::Kind::not_a_certificate, certificate.error().message);
  // The serial as the answer names it must be the certificate's own: the answer's serial is
  // what responses will be matched against.
  KeySet own;
  if (!own.add(entry.serial_no, certificate->key))
    return refuse(CertificateError::Kind::serial_mismatch,
                  which + " decrypts to a certificate with serial " + certificate->serial);
  if (now < certificate->effective || now > certificate->expiry)
    return refuse(CertificateError::Kind::outside_validity,
                  which + " is valid from " + utc_text(certificate->effective) + " to " +
                      utc_text(certificate->expiry) + ", not now (" + utc_text(now) + ")",
                  "check this machine's clock (NTP)");
  if (ca && !ca->issued(certificate->pem, now))
    return refuse(CertificateError::Kind::untrusted_chain, which + " does not chain to wechatpay.platform_ca_file",
                  "check that wechatpay.platform_ca_file holds the CA that issues WeChat Pay's platform "
                  "certificates; an answer that fails this may not come from WeChat Pay");
  return std::move(certificate).value();
}

Result<std::string, CertificateError> judge_download_signature(const KeySet& carried, const KeySet& trusted,
                                                               const ResponseHeaders& headers,
                                                               std::string_view raw_body,
                                                               std::chrono::system_clock::time_point now) {
  auto own = verify_response(carried, headers, raw_body, now);
  if (!own)
    return refuse(CertificateError::Kind::signature_invalid,
                  "the /v3/certificates answer is not signed by a certificate it lists: " + own.error().message,
                  "this answer may not come from WeChat Pay; check the network path to wechatpay.base_url");
  if (trusted.empty()) return std::move(own).value().key_id;
  auto known = verify_response(trusted, headers, raw_body, now);
  if (!known) {
    std::string ids;
    for (const auto& id : trusted.key_ids()) ids += (ids.empty() ? "" : ", ") + id;
    return refuse(CertificateError::Kind::not_signed_by_trusted,
                  "the /v3/certificates answer is signed by " + in_quotes(own.value().key_id) +
                      ", which this tenant does not trust yet (trusted: " + excerpt(ids, 256) + ")",
                  "if WeChat Pay rotated while callbackd could not refresh, check the new certificate on the "
                  "merchant platform and insert it into callbackd.platform_certificates (docs/runbook.md)");
  }
  return std::move(known).value().key_id;
}

Result<std::vector<PlatformCertificate>, CertificateError> accept_download(std::string_view raw_body,
                                                                           const ResponseHeaders& headers,
                                                                           const ApiV3Key& key, const KeySet& trusted,
                                                                           std::chrono::system_clock::time_point now,
                                                                           const PlatformCa* ca) {
  auto entries = parse_certificates_answer(raw_body);
  if (!entries) return std::move(entries).error();
  std::vector<PlatformCertificate> certificates;
  KeySet carried;
  for (const auto& entry : *entries) {
    auto opened = open_certificate(entry, key, now, ca);
    if (!opened) return std::move(opened).error();
    if (!carried.add(entry.serial_no, opened->key))  // checked by open_certificate already
      return refuse(CertificateError::Kind::serial_mismatch, "certificate " + in_quotes(entry.serial_no));
    certificates.push_back(std::move(opened).value());
  }
  auto signer = judge_download_signature(carried, trusted, headers, raw_body, now);
  if (!signer) return std::move(signer).error();
  return certificates;
}

DownloadVerdict judge_certificates_download(int status, std::string_view body, const ResponseHeaders& headers,
                                            const ApiV3Key& key, const KeySet& trusted,
                                            std::chrono::system_clock::time_point now, const PlatformCa* ca) {
  DownloadVerdict v;
  if (status >= 200 && status < 300) {
    auto accepted = accept_download(body, headers, key, trusted, now, ca);
    if (accepted) {
      v.kind = DownloadVerdict::Kind::accepted;
      v.certificates = std::move(accepted).value();
      v.outcome = "accepted";
      return v;
    }
    const auto& e = accepted.error();
    v.kind = DownloadVerdict::Kind::refused;
    v.code = "PLATFORM_CERTIFICATE_REFUSED";
    v.outcome = certificate_error_name(e.kind);
    v.reason = "GET /v3/certificates refused (" + v.outcome + "): " + e.message +
               (e.fix.empty() ? "" : " (fix: " + e.fix + ")");
    return v;
  }
  const ApiError error = parse_error_body(body);
  const std::string said = "GET /v3/certificates answered " + std::to_string(status) +
                           (error.code.empty() ? "" : " " + error.code) +
                           (error.message.empty() ? "" : " (" + excerpt(error.message, 120) + ")");
  // Only WeChat Pay's own error format is its verdict: a proxy's 404 or 401 page says nothing
  // about the merchant (outcome.h), so that is tried again later.
  if (status == 404 && error.wechatpay_format) {
    v.kind = DownloadVerdict::Kind::no_platform_certificate;
    v.code = "NO_PLATFORM_CERTIFICATE";
    v.outcome = "not_found";
    v.reason = said +
               ": this merchant has no platform certificate (fix: this merchant uses a WeChat Pay public key: set "
               "wechatpay_key_id and wechatpay_key_path)";
  } else if ((status == 401 || status == 403) && error.wechatpay_format) {
    // The tenant's own signature or rights: as for any request, retrying cannot help.
    v.kind = DownloadVerdict::Kind::refused;
    v.code = error.code.empty() ? "HTTP_" + std::to_string(status) : error.code;
    v.outcome = "http_" + std::to_string(status);
    v.reason = said + " (fix: check the tenant's mchid, merchant_serial_no and private key)";
  } else {
    v.kind = DownloadVerdict::Kind::transient;
    v.code = error.code.empty() ? "HTTP_" + std::to_string(status) : error.code;
    v.outcome = "http_" + std::to_string(status);
    v.reason = said;
  }
  return v;
}

Result<std::string, CryptoError> certificates_answer(const std::vector<CertificateToList>& certificates,
                                                     const ApiV3Key& key, const std::vector<std::string>& nonces) {
  nlohmann::json data = nlohmann::json::array();
  for (std::size_t i = 0; i < certificates.size(); ++i) {
    const auto& c = certificates[i];
    const std::string& nonce = nonces.at(i);
    auto sealed = aead_aes_256_gcm_encrypt(key, nonce, "certificate", c.pem);
    if (!sealed) return std::move(sealed).error();
    data.push_back({{"serial_no", c.serial_no},
                    {"effective_time", c.effective_time},
                    {"expire_time", c.expire_time},
                    {"encrypt_certificate",
                     {{"algorithm", kAeadAlgorithm},
                      {"nonce", nonce},
                      {"associated_data", "certificate"},
                      {"ciphertext", sealed.value()}}}});
  }
  return nlohmann::json{{"data", std::move(data)}}.dump();
}

}  // namespace callbackd::wechatpay
