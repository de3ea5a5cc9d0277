#include "core/tenant.h"

#include <unistd.h>

#include "core/credentials.h"
#include "core/desired/validation.h"
#include "core/wechatpay/key_cache.h"

namespace callbackd {

std::string_view tenant_mode_name(TenantMode mode) {
  switch (mode) {
    case TenantMode::apply:
      return "apply";
    case TenantMode::observe:
      return "observe";
    case TenantMode::paused:
      return "paused";
  }
  return "apply";
}

namespace {

// Certificate serials are at most 20 bytes (RFC 5280), so 40 hex digits; the decimal rendering
// of a WeChat Pay serial is ~48 digits, which this length limit catches.
bool is_upper_hex(std::string_view s) {
  if (s.empty() || s.size() > 40) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

}  // namespace

Result<TenantCredentials, std::vector<Problem>> load_tenant_credentials(const TenantRow& tenant,
                                                                        const std::string& credentials_dir,
                                                                        wechatpay::KeyCache* cache) {
  std::vector<Problem> problems;
  const std::string who = "tenant '" + tenant.tenant_id + "'";
  auto problem = [&](const std::string& column, std::string what, std::string fix = "") {
    problems.push_back({who + ": " + column, std::move(what), std::move(fix)});
  };

  if (auto bad = desired::validate_mchid(tenant.caller_mchid))
    problem("mchid", bad->message, "set callbackd.tenants.mchid to the calling merchant's id (digits)");
  if (!is_upper_hex(tenant.merchant_serial_no))
    problem("merchant_serial_no",
            "must be the API certificate serial in uppercase hex (at most 40 digits), found '" +
                tenant.merchant_serial_no.substr(0, 80) +
                "' (a decimal or lowercase serial is a classic cause of 401 SIGN_ERROR)",
            "copy it from `openssl x509 -in apiclient_cert.pem -noout -serial`");
  const bool certificate_mode = tenant.certificate_mode();
  const bool public_key_mode = tenant.wechatpay_key_id.starts_with(wechatpay::kPublicKeyIdPrefix);
  if (!certificate_mode && tenant.wechatpay_key_path.empty())
    problem("wechatpay_key_path", "is not set and neither is apiv3_key_path: responses could not be verified",
            "set wechatpay_key_id and wechatpay_key_path (a WeChat Pay public key), or apiv3_key_path to have "
            "callbackd download the platform certificates");
  else if (!certificate_mode && !public_key_mode && !is_upper_hex(tenant.wechatpay_key_id))
    problem("wechatpay_key_id",
            "must be a WeChat Pay public key id (PUB_KEY_ID_...) or a platform certificate serial in "
            "uppercase hex, found '" +
                tenant.wechatpay_key_id.substr(0, 80) + "'");

  // Opens one key file named in SQL beneath the credentials directory, reporting a confinement
  // problem against its column. The key is then read through that descriptor.
  auto open_key = [&](const std::string& column, const std::string& sql_path) -> std::optional<CredentialFile> {
    auto file = open_credential_file(credentials_dir, sql_path);
    if (!file) {
      problem(column, file.error().what, file.error().fix);
      return std::nullopt;
    }
    return std::move(file).value();
  };

  std::optional<wechatpay::PrivateKey> private_key;
  if (auto file = open_key("private_key_path", tenant.private_key_path)) {
    auto key = wechatpay::read_private_key(file->fd(), file->path(), ::geteuid(), cache);
    if (key)
      private_key = key.value();
    else
      problem("private_key_path", key.error().message, key.error().fix);
  }

  wechatpay::KeySet keys;
  auto add_key = [&](const std::string& column, const std::string& key_id, const std::string& sql_path) {
    auto file = open_key(column, sql_path);
    if (!file) return;
    auto key = wechatpay::read_verification_key(file->fd(), file->path(), cache);
    if (!key) {
      problem(column, key.error().message, key.error().fix);
      return;
    }
    if (private_key && wechatpay::keys_match(*private_key, key.value()))
      problem(column,
              "this is the public half of the tenant's own private key, not WeChat Pay's key: responses "
              "would never verify",
              "download the WeChat Pay public key (or platform certificate) from the merchant platform");
    if (auto added = keys.add(key_id, key.value()); !added) problem(column, added.error().message, added.error().fix);
  };
  std::optional<wechatpay::ApiV3Key> apiv3_key;
  std::string wechatpay_serial = tenant.wechatpay_key_id;
  if (certificate_mode) {
    if (auto file = open_key("apiv3_key_path", tenant.apiv3_key_path)) {
      auto bytes = wechatpay::read_secret_file(file->fd(), file->path(), ::geteuid());
      auto key = bytes ? wechatpay::parse_apiv3_key(*bytes, file->path())
                       : Result<wechatpay::ApiV3Key, wechatpay::KeyError>(std::move(bytes).error());
      if (key)
        apiv3_key = key.value();
      else
        problem("apiv3_key_path", key.error().message, key.error().fix);
    }
    // The certificates trusted before (callbackd.platform_certificates): verified with at once,
    // no download needed. Responses are asked to be signed with the newest.
    std::chrono::system_clock::time_point newest{};
    for (const auto& stored : tenant.platform_certificates) {
      const std::string column = "platform_certificates[" + stored.serial + "]";
      auto key = cache ? cache->verification_key(stored.pem, column)
                       : wechatpay::parse_verification_key_pem(stored.pem, column);
      if (!key) {
        problem(column, key.error().message, "delete the row; the next download stores the certificate again");
        continue;
      }
      if (auto added = keys.add(stored.serial, key.value()); !added) {
        problem(column, added.error().message, "delete the row; the next download stores the certificate again");
        continue;
      }
      if (key->certificate() && key->certificate()->not_before >= newest) {
        newest = key->certificate()->not_before;
        wechatpay_serial = stored.serial;
      }
    }
  } else {
    add_key("wechatpay_key_path", tenant.wechatpay_key_id, tenant.wechatpay_key_path);
  }
  for (const auto& extra : tenant.extra_keys)
    add_key("tenant_wechatpay_keys[" + extra.key_id + "].key_path", extra.key_id, extra.key_path);

  if (!problems.empty()) return problems;
  return TenantCredentials{wechatpay::MerchantCredentials{tenant.caller_mchid, tenant.merchant_serial_no, *private_key},
                           std::move(keys), std::move(wechatpay_serial), std::move(apiv3_key)};
}

}  // namespace callbackd
