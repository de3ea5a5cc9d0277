#include "core/desired/validation.h"

#include "core/wechatpay/encoding.h"

#include <cstdio>

namespace callbackd::desired {
namespace {

// Long enough to recognise the value, short enough that a 10 MB value stays a one-line message.
constexpr std::size_t kExcerptBytes = 64;

std::string shown(std::string_view value) { return "\"" + wechatpay::excerpt(value, kExcerptBytes) + "\""; }

ValidationError notify_url_error(std::string what, std::string_view value) {
  return ValidationError{"notify_url", "notify_url " + std::move(what) + ", found " + shown(value)};
}

// Printable ASCII that RFC 3986 allows nowhere in a URI, not even in the path or query.
// WeChat Pay would refuse such a URL (or a receiving server mis-read it), and '"' and '\'
// are the characters that break out of quoting in whatever later reads the URL.
bool is_never_unencoded(char c) { return std::string_view("\"<>\\^`{|}").find(c) != std::string_view::npos; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

// A DNS name or IPv4 literal: labels of letters, digits, '-' and '_' separated by single dots
// (one trailing dot allowed), no label starting or ending with '-'.
bool is_reg_name(std::string_view host) {
  if (host.empty()) return false;
  if (host.back() == '.') host.remove_suffix(1);
  std::size_t label_start = 0;
  for (std::size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      const std::string_view label = host.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
      label_start = i + 1;
      continue;
    }
    const char c = host[i];
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') return false;
  }
  return true;
}

bool is_ipv6_literal(std::string_view inside) {
  if (inside.size() < 2) return false;
  for (char c : inside)
    if (!is_digit(c) && !((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) && c != ':' && c != '.') return false;
  return inside.find(':') != std::string_view::npos;
}

}  // namespace

std::optional<ValidationError> validate_mchid(std::string_view mchid) {
  if (mchid.empty()) return ValidationError{"mchid", "mchid is empty; expected 1-20 ASCII digits"};
  if (mchid.size() > kMaxMchidLength)
    return ValidationError{
        "mchid", "mchid must be 1-20 ASCII digits, found " + std::to_string(mchid.size()) + " bytes: " + shown(mchid)};
  for (char c : mchid)
    if (!is_digit(c)) return ValidationError{"mchid", "mchid must be 1-20 ASCII digits, found " + shown(mchid)};
  return std::nullopt;
}

std::optional<ValidationError> validate_notify_url(std::string_view url) {
  if (url.empty())
    return ValidationError{"notify_url", "notify_url is empty; expected an absolute https URL of at most 256 bytes"};
  if (url.size() > kMaxNotifyUrlBytes)
    return notify_url_error("is " + std::to_string(url.size()) + " bytes; expected at most 256", url);
  for (std::size_t i = 0; i < url.size(); ++i) {
    const auto c = static_cast<unsigned char>(url[i]);
    if (c <= 0x20 || c == 0x7F)
      return notify_url_error(
          "contains whitespace or a control character at byte " + std::to_string(i) + "; percent-encode it (e.g. %20)",
          url);
    if (c >= 0x80)
      return notify_url_error("contains a non-ASCII byte at byte " + std::to_string(i) +
                                  "; use punycode for the host and percent-encoding elsewhere",
                              url);
    if (is_never_unencoded(static_cast<char>(c))) {
      char encoded[4];
      std::snprintf(encoded, sizeof encoded, "%%%02X", c);
      return notify_url_error("contains '" + std::string(1, static_cast<char>(c)) + "' at byte " + std::to_string(i) +
                                  ", which a URL cannot hold unencoded; percent-encode it (" + encoded + ")",
                              url);
    }
  }
  constexpr std::string_view kScheme = "https://";
  if (!equals_ignoring_case(url.substr(0, kScheme.size()), kScheme))
    return notify_url_error("must be an absolute https URL (https://host/path)", url);
  if (url.find('#') != std::string_view::npos)
    return notify_url_error("must not contain a fragment (#…): it is never sent to the server", url);

  const std::string_view rest = url.substr(kScheme.size());
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (authority.find('@') != std::string_view::npos)
    return notify_url_error("must not contain user information (user@host)", url);

  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos || !is_ipv6_literal(authority.substr(1, close - 1)))
      return notify_url_error("has an invalid IPv6 host; expected https://[2001:db8::1]/path", url);
    host = authority.substr(0, close + 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return notify_url_error("has garbage after the IPv6 host", url);
      port = after.substr(1);
      if (port.empty()) return notify_url_error("has an empty port after ':'", url);
    }
  } else {
    if (const std::size_t colon = authority.find(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) return notify_url_error("has an empty port after ':'", url);
    }
    if (host.empty()) return notify_url_error("has no host; expected https://host/path", url);
    if (!is_reg_name(host)) return notify_url_error("has an invalid host; expected a DNS name or IP address", url);
  }
  if (!port.empty()) {
    unsigned long value = 0;
    bool ok = port.size() <= 5;
    for (char c : port) {
      if (!is_digit(c)) ok = false;
      if (ok) value = value * 10 + static_cast<unsigned long>(c - '0');
    }
    if (!ok || value == 0 || value > 65535) return notify_url_error("has an invalid port; expected 1-65535", url);
  }
  return std::nullopt;
}

std::optional<ValidationError> validate_desired(std::string_view sub_merchant_mchid, std::string_view notify_url) {
  if (auto error = validate_mchid(sub_merchant_mchid)) return error;
  return validate_notify_url(notify_url);
}

}  // namespace callbackd::desired
