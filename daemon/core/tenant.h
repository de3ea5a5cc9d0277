// A tenant: a merchant account whose API key signs requests (the `mchid` of the
// Authorization header), as written by operators into callbackd.tenants.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/wechatpay/platform_certificates.h"
#include "core/wechatpay/signing.h"
#include "core/wechatpay/verification.h"

namespace callbackd {

enum class TenantMode { apply, observe, paused };

struct TenantRow {
  struct ExtraKey {
    std::string key_id;
    std::string key_path;
  };
  // A platform certificate callbackd downloaded and trusted (callbackd.platform_certificates).
  struct StoredCertificate {
    std::string serial;
    std::string pem;
    std::chrono::system_clock::time_point effective_at;
    std::chrono::system_clock::time_point expires_at;
    std::chrono::system_clock::time_point fetched_at;
    bool operator==(const StoredCertificate&) const = default;
  };
  std::string tenant_id;
  std::string caller_mchid;
  std::string merchant_serial_no;
  std::string private_key_path;    // relative to the credentials directory
  std::string wechatpay_key_id;    // PUB_KEY_ID_... or a platform certificate serial; "" (NULL) in certificate mode
  std::string wechatpay_key_path;  // relative to the credentials directory; "" (NULL) in certificate mode
  std::string apiv3_key_path;      // relative to the credentials directory; "" when NULL
  int rate_per_minute = 1000;
  TenantMode mode = TenantMode::apply;
  int max_in_flight = 4;
  std::vector<ExtraKey> extra_keys;                      // callbackd.tenant_wechatpay_keys (rotation)
  std::vector<StoredCertificate> platform_certificates;  // certificate mode, by serial
  // tenants.allowed_notify_hosts as written (nullopt: NULL, any host), for check-config; the
  // daemon judges rows with the copy that comes with each claim (reconcile::ClaimResult).
  std::optional<std::vector<std::string>> allowed_notify_hosts;

  // Certificate mode (migrations/0009): no WeChat Pay key given, an APIv3 key to download the
  // platform certificates with. (A row with both uses the key given.)
  bool certificate_mode() const { return wechatpay_key_path.empty() && !apiv3_key_path.empty(); }
};

// What signing and verifying for one tenant needs, loaded once from its key files.
struct TenantCredentials {
  wechatpay::MerchantCredentials merchant;
  wechatpay::KeySet response_keys;
  std::string wechatpay_serial;  // sent as Wechatpay-Serial: the key we expect responses signed with
  // Certificate mode: the key that decrypts downloaded certificates. response_keys then holds
  // the stored certificates (none before the first download).
  std::optional<wechatpay::ApiV3Key> apiv3_key;
};

// Opens every key path of `tenant` beneath `credentials_dir` (open_credential_file), reads the
// keys through those descriptors as the daemon's euid (whose ACL entry may grant a private
// key), cross-checks them, and checks the identifiers' shapes (mchid digits, serial uppercase hex). Returns every
// problem found, each naming the tenant, the column and the fix. Used by check-config (where
// a problem is fatal) and by the daemon (where it pauses only that tenant). With a `cache`
// (the daemon's), key files whose bytes were parsed before are not decoded and checked again
// (wechatpay/key_cache.h); the files are still opened, read and their permissions checked.
Result<TenantCredentials, std::vector<Problem>> load_tenant_credentials(const TenantRow& tenant,
                                                                        const std::string& credentials_dir,
                                                                        wechatpay::KeyCache* cache = nullptr);

std::string_view tenant_mode_name(TenantMode mode);

}  // namespace callbackd
