// When a certificate-mode tenant's platform certificates are downloaded again. WeChat Pay lists
// a new certificate 24 h before it signs with it and asks for a refresh at least every 12 h
// (docs/wechatpay-v3.md 4a); a refresh is also made at once when a response names a serial
// the tenant does not know (engine/certificate_keeper.h), so the schedule is the safety net.
#pragma once

#include <chrono>
#include <string_view>

namespace callbackd::reconcile {

inline constexpr std::chrono::hours kCertificateRefreshInterval{12};
// How far tenants' refreshes are spread: each tenant refreshes up to this much earlier than
// the interval, by a share fixed by its id, so that tenants downloaded at the same start-up do
// not all refresh in the same minute 12 h later.
inline constexpr std::chrono::hours kCertificateRefreshSpread{1};
// A refresh already overdue (the daemon was down) waits up to this, likewise spread, so that a
// start-up does not download for every tenant at once.
inline constexpr std::chrono::minutes kOverdueRefreshSpread{10};

// The tenant's fixed share in [0, 1) (FNV-1a of its id): stable across restarts and instances.
double certificate_refresh_share(std::string_view tenant_id);

// How long from now until the next download, `since_fetched` after the last one (negative:
// the clock went back; treated as just fetched).
std::chrono::milliseconds certificate_refresh_wait(std::chrono::milliseconds since_fetched, std::string_view tenant_id);

}  // namespace callbackd::reconcile
