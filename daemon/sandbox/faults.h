// Fault injection for callbackd-sandbox: which misbehaviour a request gets. Pure: the choice
// is a function of the plan, the sub-merchant and the request's sequence number, so a run is
// reproducible from the seed (same seed, same request order -> same faults).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd::sandbox {

enum class FaultKind {
  none,
  error,             // a fixed API error: `code` with its status (seed table, SIGN_ERROR, SYSTEM_ERROR, 503)
  delay,             // answer normally after `delay`
  timeout,           // read the request, never answer (until the client gives up)
  reset,             // read the request, then reset the TCP connection (RST, no response byte)
  malformed_body,    // 200 with a correctly signed body that is not the documented JSON
  bad_signature,     // 200 with a valid body whose Wechatpay-Signature does not verify
  unknown_serial,    // 200, correctly signed, but Wechatpay-Serial names a key id the client
                     // does not know (WeChat Pay rotated its key, the tenant was not told)
  clock_skew,        // Wechatpay-Timestamp and update_time shifted by `skew`
  update_time_skew,  // only update_time shifted by `skew`: WeChat Pay's records run on another
                     // clock than PostgreSQL's, while signatures still verify
  stale_close,       // on a REUSED keep-alive connection: close without answering, as a server
                     // whose idle timer fired just as the request arrived; fresh ones are served
  oversized_body,    // 200 with a body of `size_bytes` (to exercise the client's bound)
  malformed_http,    // bytes that are not an HTTP/1.1 response, then close
  proxy_answer,      // what a forward proxy or WAF in front of WeChat Pay answers instead of it:
                     // `status` (default 403) with an HTML page (text/html) or an empty body,
                     // no Wechatpay-* headers, no Request-ID; the setting is not stored
  odd_update_time,   // 200, correctly signed, the setting stored, but update_time written as
                     // `update_time` (verbatim) or, without it, in the seed's prose form
                     // "YYYY-MM-DDTHH:mm:ss:sss+08:00" (a colon before the milliseconds)
};

std::string_view to_string(FaultKind kind);
std::optional<FaultKind> fault_kind_from_string(std::string_view name);

struct FaultRule {
  FaultKind kind{FaultKind::none};
  double probability{1.0};  // random rules only: chance per request, in [0, 1]
  std::string code;         // error: the API error code
  int status{0};            // error: HTTP status; 0 = the code's documented status
  std::chrono::milliseconds delay{0};
  std::chrono::seconds skew{0};
  std::size_t size_bytes{0};
  bool empty_body{false};                    // proxy_answer: no body instead of the HTML page
  std::optional<std::string> update_time{};  // odd_update_time: the text to send
  std::optional<std::string> message{};      // error: the body's message; default: the code's own
};

// What GET /v3/certificates does wrong for a calling merchant.
enum class CertificateFault {
  bad_tag,          // the GCM tag of the first certificate's ciphertext altered
  unlisted_signer,  // the answer signed by a key whose certificate it does not list
};
std::string_view to_string(CertificateFault fault);
std::optional<CertificateFault> certificate_fault_from_string(std::string_view name);

struct FaultPlan {
  std::uint64_t seed{1};
  std::map<std::string, CertificateFault, std::less<>> certificates_by_caller;  // GET /v3/certificates
  std::map<std::string, FaultRule, std::less<>> by_sub_merchant;                // always applied to these
  std::vector<FaultRule> random;  // otherwise: the first rule whose dice roll hits
};

// What to do with one request (a rule resolved: the status filled in).
struct FaultAction {
  FaultKind kind{FaultKind::none};
  std::string code;
  int status{0};
  std::string message;
  std::chrono::milliseconds delay{0};
  std::chrono::seconds skew{0};
  std::size_t size_bytes{0};
  bool empty_body{false};
  std::optional<std::string> update_time{};
};

// `request_index` is the sandbox's sequence number of the request (0, 1, 2, ...).
FaultAction choose_fault(const FaultPlan& plan, std::string_view sub_merchant, std::uint64_t request_index);

// A proxy's page for `status`, as nginx writes it ("<html>…<h1>403 Forbidden</h1>…"); "" when
// `empty`.
std::string proxy_page(int status, bool empty);

// update_time as the sandbox writes it, Beijing time: the seed's example form
// "2015-05-20T13:29:35.120+08:00", or with `prose_form` its prose's "…T13:29:35:120+08:00".
std::string beijing_update_time(std::chrono::system_clock::time_point t, bool prose_form = false);

// The documented status and message of an error code of this endpoint (seed table) plus the
// common SIGN_ERROR (401) and SYSTEM_ERROR (500); nullopt for an unknown code.
struct ErrorCodeInfo {
  int status;
  std::string_view message;
};
std::optional<ErrorCodeInfo> error_code_info(std::string_view code);

// A uniform number in [0, 1) from (seed, index): splitmix64, stable across platforms.
double unit_random(std::uint64_t seed, std::uint64_t index);

}  // namespace callbackd::sandbox
