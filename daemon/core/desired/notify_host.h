// Which hosts a tenant's notify URLs may point to (tenants.allowed_notify_hosts, issue 18).
// A typo, a script run against the wrong tenant or a stolen operator login could otherwise
// redirect a merchant's payment events anywhere with one UPDATE. Pure; never throws.
//
// One canonical form, applied the same way to the list's entries and to the URL's host, so
// that no spelling of a host slips past the comparison:
//  1. percent-decoding (RFC 3986 allows %XX in a host; a URL parser decodes it before it
//     resolves the name, so "hooks%2Eexample.com" is hooks.example.com);
//  2. IDNA: UTS #46 mapping, non-transitional, then Punycode (libidn2, IDNA2008), so
//     "bücher.example", "BÜCHER.example" and "xn--bcher-kva.example" are one host and
//     full-width dots are dots;
//  3. ASCII lower case, and one trailing dot removed ("hooks.example.com." is the same name).
// Anything that does not come out as a host name or an IP literal matches nothing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/desired/validation.h"

namespace callbackd::desired {

// The canonical form of a host name or IP literal (steps 1-3 above); IPv6 literals keep
// their brackets ("[2001:db8::1]"). nullopt when `host` is not a host: empty, an empty
// label, a character that no host holds ('/', '@', ':' outside brackets, whitespace, '%'
// that does not decode, ...), or a name IDNA refuses.
std::optional<std::string> canonical_host(std::string_view host);

// The host a request to `url` would connect to, canonical, or nullopt when the URL has no
// readable host. Read the way a URL parser reads it, not the way a person skims it: the
// authority ends at the first '/', '?', '#' or '\'; user information ends at the LAST '@'
// ("https://hooks.example.com@evil.com/" goes to evil.com); a port is dropped.
std::optional<std::string> notify_url_host(std::string_view url);

// One entry of allowed_notify_hosts: a host ("hooks.example.com") or a leading-wildcard
// suffix ("*.example.com": any name that ENDS in .example.com, at any depth; not
// example.com itself, which is an entry of its own).
struct HostPattern {
  std::string host;  // canonical; for a wildcard the suffix without "*."
  bool wildcard = false;
};

// tenants.allowed_notify_hosts, read. `entries` as written, for messages; `problems` names
// each entry that is neither a host nor "*." followed by one, with its fix. A list with a
// problem allows nothing (fail closed): a typo in the list must not open it.
struct AllowedHosts {
  std::vector<std::string> entries;
  std::vector<HostPattern> patterns;
  std::vector<std::string> problems;

  // {hooks.example.com, *.example.org}, as an operator would write the array.
  std::string shown() const;
};

AllowedHosts parse_allowed_hosts(const std::vector<std::string>& entries);

// Whether a canonical host matches one of the patterns. Wildcards never match IP literals
// ("*.0.1" must not allow 127.0.0.1).
bool host_allowed(std::string_view canonical, const AllowedHosts& allowed);

// The check a desired row's notify_url goes through after validate_desired(): nullopt when
// `allowed` is nullopt (NULL: any host) or the URL's host is allowed; otherwise an error
// (code NOTIFY_HOST_NOT_ALLOWED) whose message names the host and the list, or the list's
// problem.
std::optional<ValidationError> check_notify_host(std::string_view notify_url,
                                                 const std::optional<AllowedHosts>& allowed);

}  // namespace callbackd::desired
