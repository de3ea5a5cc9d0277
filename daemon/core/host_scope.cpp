#include "core/host_scope.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace callbackd {

namespace {

std::string normalized_name(std::string_view host) {
  std::string h(host);
  std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!h.empty() && h.back() == '.') h.pop_back();
  return h;
}

// `name` is `zone` or a name under it.
bool in_zone(std::string_view name, std::string_view zone) {
  return name == zone ||
         (name.size() > zone.size() && name.ends_with(zone) && name[name.size() - zone.size() - 1] == '.');
}

HostScope ipv4_scope(std::uint32_t a) {  // host byte order
  auto in = [a](std::uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  if (in(0x7f000000, 8) || in(0x00000000, 8)) return HostScope::loopback;
  if (in(0x0a000000, 8) || in(0xac100000, 12) || in(0xc0a80000, 16) || in(0x64400000, 10) || in(0xa9fe0000, 16))
    return HostScope::private_network;
  return HostScope::anywhere;
}

HostScope ipv6_scope(const std::array<unsigned char, 16>& b) {
  const bool first80_zero = std::all_of(b.begin(), b.begin() + 10, [](unsigned char c) { return c == 0; });
  if (first80_zero && b[10] == 0xff && b[11] == 0xff)  // ::ffff:a.b.c.d, IPv4-mapped
    return ipv4_scope(static_cast<std::uint32_t>(b[12]) << 24 | static_cast<std::uint32_t>(b[13]) << 16 |
                      static_cast<std::uint32_t>(b[14]) << 8 | b[15]);
  const bool first120_zero =
      first80_zero && std::all_of(b.begin() + 10, b.begin() + 15, [](unsigned char c) { return c == 0; });
  if (first120_zero && (b[15] == 1 || b[15] == 0)) return HostScope::loopback;   // ::1, ::
  if ((b[0] & 0xfe) == 0xfc) return HostScope::private_network;                  // fc00::/7
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return HostScope::private_network;  // fe80::/10
  return HostScope::anywhere;
}

}  // namespace

HostScope host_scope(std::string_view host) {
  const std::string h = normalized_name(host);
  if (h.empty() || h.find_first_of(" \t\r\n") != std::string::npos) return HostScope::anywhere;
  if (h.find(':') != std::string::npos) {
    std::array<unsigned char, 16> bytes{};
    const std::string address = h.substr(0, h.find('%'));  // fe80::1%eth0: the zone is not the address
    if (inet_pton(AF_INET6, address.c_str(), bytes.data()) == 1) return ipv6_scope(bytes);
    return HostScope::anywhere;
  }
  // inet_aton, not inet_pton: getaddrinfo reads "127.1" and "0x7f.1" as 127.0.0.1, so must we.
  if (in_addr v4{}; inet_aton(h.c_str(), &v4) != 0) return ipv4_scope(ntohl(v4.s_addr));
  if (in_zone(h, "localhost")) return HostScope::loopback;
  for (const char* zone : {"local", "home.arpa", "internal"})
    if (in_zone(h, zone)) return HostScope::private_network;
  return HostScope::anywhere;
}

bool binds_loopback_only(std::string_view address) {
  const std::string a = normalized_name(address);
  if (host_scope(a) != HostScope::loopback) return false;
  in6_addr v6{};
  if (inet_pton(AF_INET6, a.c_str(), &v6) == 1)
    return !IN6_IS_ADDR_UNSPECIFIED(&v6) && !(IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 0);
  in_addr v4{};
  return inet_pton(AF_INET, a.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

std::string_view to_string(HostScope scope) {
  switch (scope) {
    case HostScope::loopback:
      return "loopback";
    case HostScope::private_network:
      return "private";
    case HostScope::anywhere:
      return "public";
  }
  return "public";
}

bool is_wechatpay_production_host(std::string_view host) {
  const std::string h = normalized_name(host);
  return h == "api.mch.weixin.qq.com" || h == "api2.wechatpay.cn" || h == "api2.mch.weixin.qq.com";
}

bool same_host(std::string_view a, std::string_view b) { return normalized_name(a) == normalized_name(b); }

std::optional<HttpsEndpoint> parse_https_url(std::string_view url) {
  constexpr std::string_view scheme = "https://";
  if (url.size() < scheme.size() || normalized_name(url.substr(0, scheme.size())) != scheme) return std::nullopt;
  std::string_view rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of("/?#@ \t\r\n") != std::string_view::npos) return std::nullopt;
  HttpsEndpoint ep;
  std::string_view host = rest;
  std::string_view port;
  if (rest.front() == '[') {  // [::1]:8443
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;
  }
  if (host.empty()) return std::nullopt;
  if (!port.empty() || rest.back() == ':') {
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      return std::nullopt;
    const int p = std::stoi(std::string(port));
    if (p < 1 || p > 65535) return std::nullopt;
    ep.port = static_cast<std::uint16_t>(p);
  }
  ep.host = std::string(host);
  return ep;
}

}  // namespace callbackd
