// What the text of a host tells about where it is, without resolving it: loopback, a private
// network, or anywhere (a public address or a name DNS may send anywhere). Used where a
// mistake would cross from a rehearsal into production: the daemon's wechatpay.base_url and
// backup_url (config.cpp), the sandbox's listen address (sandbox/sandbox_config.cpp).
// Also: `https://host[:port]` URLs as the HTTPS client and the config read them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd {

enum class HostScope {
  loopback,         // 127.0.0.0/8, ::1, 0.0.0.0/8 and :: (Linux connects those to this host),
                    // their IPv4-mapped forms; the names localhost and *.localhost (RFC 6761)
  private_network,  // 10/8, 172.16/12, 192.168/16, 100.64/10 (shared, RFC 6598), 169.254/16
                    // and fe80::/10 (link-local), fc00::/7 (unique local), their IPv4-mapped
                    // forms; names under .local (mDNS), .home.arpa (RFC 8375), .internal
                    // (reserved for private use by ICANN, 2024)
  anywhere,         // everything else: a public address, or a name only DNS can place
};

// `host` without brackets ("::1", not "[::1]"); case and one trailing dot do not matter.
// IPv4 literals are read as the system resolver reads them (inet_aton: "127.1" is loopback).
HostScope host_scope(std::string_view host);
std::string_view to_string(HostScope scope);

// A server bound to this address is reachable from this host only: a loopback address, but
// not 0.0.0.0 or :: (which bind every interface). IP literals only.
bool binds_loopback_only(std::string_view address);

// WeChat Pay's production API hosts: api.mch.weixin.qq.com and its backups api2.wechatpay.cn
// and api2.mch.weixin.qq.com.
bool is_wechatpay_production_host(std::string_view host);
// Whether two host names are the same name (case and a trailing dot aside).
bool same_host(std::string_view a, std::string_view b);

// `https://host[:port]` split into its parts; nullopt for anything else (no path, no userinfo;
// one trailing slash is tolerated). The host of an IPv6 literal comes without its brackets.
struct HttpsEndpoint {
  std::string host;
  std::uint16_t port{443};
};
std::optional<HttpsEndpoint> parse_https_url(std::string_view url);

}  // namespace callbackd
