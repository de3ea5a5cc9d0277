#include "core/desired/notify_host.h"

#include <idn2.h>

#include <cstdlib>
#include <memory>

#include "core/wechatpay/encoding.h"

namespace callbackd::desired {
namespace {

constexpr std::size_t kMaxHostBytes = 253;  // RFC 1035, without the trailing dot
constexpr std::size_t kMaxLabelBytes = 63;

bool is_ascii_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// "%2E" -> "."; nullopt for a '%' without two hex digits after it.
std::optional<std::string> percent_decoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return std::nullopt;
    out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
    i += 2;
  }
  return out;
}

// Letters, digits, '-' and '_' in labels of 1-63 bytes separated by single dots, at most 253
// bytes: what DNS can resolve, and nothing a URL parser would read as another part of the URL.
bool is_host_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxHostBytes) return false;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!is_ascii_alnum(c) && c != '-' && c != '_') return false;
    if (++label > kMaxLabelBytes) return false;
  }
  return label > 0;
}

std::optional<std::string> idna_to_ascii(const std::string& name) {
  char* out = nullptr;
  // Non-transitional UTS #46 (ß stays ß, as browsers resolve it today), NFC first.
  const int rc = idn2_to_ascii_8z(name.c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  const std::unique_ptr<char, decltype(&idn2_free)> owned(out, &idn2_free);
  if (rc != IDN2_OK || !out) return std::nullopt;
  return std::string(out);
}

// An IP literal, as far as a wildcard is concerned: bracketed IPv6, or a name whose last label
// is a number (decimal or 0x-hex), which the resolver reads as IPv4 ("127.1", "0x7f.0.0.1").
bool is_ip_like(std::string_view canonical) {
  if (!canonical.empty() && canonical.front() == '[') return true;
  const std::string_view last = canonical.substr(canonical.rfind('.') + 1);
  if (last.empty()) return false;
  if (last.size() > 2 && last[0] == '0' && last[1] == 'x') {
    for (char c : last.substr(2))
      if (!is_hex(c)) return false;
    return true;
  }
  for (char c : last)
    if (c < '0' || c > '9') return false;
  return true;
}

ValidationError host_error(std::string message) {
  return ValidationError{"notify_url", std::move(message), "NOTIFY_HOST_NOT_ALLOWED"};
}

}  // namespace

std::optional<std::string> canonical_host(std::string_view host) {
  if (host.empty()) return std::nullopt;
  if (host.front() == '[') {
    if (host.size() < 4 || host.back() != ']') return std::nullopt;
    const std::string_view inside = host.substr(1, host.size() - 2);
    for (char c : inside)
      if (!is_hex(c) && c != ':' && c != '.') return std::nullopt;
    if (inside.find(':') == std::string_view::npos) return std::nullopt;
    return lowered(host);
  }
  auto decoded = percent_decoded(host);
  if (!decoded) return std::nullopt;
  bool ascii = true;
  for (char c : *decoded) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      ascii = false;
      continue;
    }
    // Anything else would be read as another part of the URL, or is not in a name at all.
    if (!is_ascii_alnum(c) && c != '-' && c != '_' && c != '.') return std::nullopt;
  }
  std::string name = ascii ? lowered(*decoded) : idna_to_ascii(*decoded).value_or(std::string());
  if (name.empty()) return std::nullopt;
  name = lowered(name);
  if (name.back() == '.') name.pop_back();
  if (!is_host_name(name)) return std::nullopt;
  return name;
}

std::optional<std::string> notify_url_host(std::string_view url) {
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  std::string_view authority = url.substr(scheme_end + 3);
  // WHATWG URL parsers treat '\' like '/' in http(s) URLs.
  authority = authority.substr(0, authority.find_first_of("/?#\\"));
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(0, close + 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
    }
  } else if (const std::size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  for (char c : port)
    if (c < '0' || c > '9') return std::nullopt;  // "a:b@c" has been cut at the '@' already
  return canonical_host(host);
}

std::string AllowedHosts::shown() const {
  std::string s = "{";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i) s += ", ";
    s += wechatpay::excerpt(entries[i], 64);
  }
  return s + "}";
}

AllowedHosts parse_allowed_hosts(const std::vector<std::string>& entries) {
  AllowedHosts allowed;
  allowed.entries = entries;
  for (const auto& entry : entries) {
    const std::string_view e = entry;
    const bool wildcard = e.size() > 2 && e.substr(0, 2) == "*.";
    std::optional<std::string> host;
    if (e.find('*', wildcard ? 1 : 0) == std::string_view::npos) host = canonical_host(wildcard ? e.substr(2) : e);
    if (host && wildcard && is_ip_like(*host)) host.reset();
    if (!host) {
      allowed.problems.push_back("entry \"" + wechatpay::excerpt(e, 64) +
                                 "\" is not a host name or *. followed by one; write e.g. hooks.example.com or "
                                 "*.example.com (no scheme, port or path)");
      continue;
    }
    allowed.patterns.push_back(HostPattern{std::move(*host), wildcard});
  }
  return allowed;
}

bool host_allowed(std::string_view canonical, const AllowedHosts& allowed) {
  if (!allowed.problems.empty()) return false;
  for (const auto& p : allowed.patterns) {
    if (!p.wildcard) {
      if (canonical == p.host) return true;
      continue;
    }
    if (canonical.size() > p.host.size() + 1 && canonical.substr(canonical.size() - p.host.size()) == p.host &&
        canonical[canonical.size() - p.host.size() - 1] == '.' && !is_ip_like(canonical))
      return true;
  }
  return false;
}

std::optional<ValidationError> check_notify_host(std::string_view notify_url,
                                                 const std::optional<AllowedHosts>& allowed) {
  if (!allowed) return std::nullopt;
  if (!allowed->problems.empty())
    return host_error("tenants.allowed_notify_hosts " + allowed->shown() + ": " + allowed->problems.front() +
                      "; nothing of this tenant is sent until the list is fixed");
  const auto host = notify_url_host(notify_url);
  if (!host)
    return host_error("notify_url has no host that tenants.allowed_notify_hosts " + allowed->shown() +
                      " could allow, found \"" + wechatpay::excerpt(notify_url, 64) + "\"");
  if (host_allowed(*host, *allowed)) return std::nullopt;
  return host_error("notify_url host \"" + *host + "\" is not in tenants.allowed_notify_hosts " + allowed->shown() +
                    "; add it to the list or correct the URL");
}

}  // namespace callbackd::desired
