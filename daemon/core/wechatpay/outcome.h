// What one attempt to set a sub-merchant's notify URL came to, and what the reconciler must
// do next. A pure function of what was observed; never throws, whatever the bytes.
//
// Outcome names (stable; stored in callbackd.audit_log.outcome, used in metrics and logs):
//   "applied"       a 2xx whose signature verified and whose body parsed: the row is in sync.
//   "rejected"      WeChat Pay refused this row (400 PARAM_ERROR, MCH_NOT_EXISTS,
//                   INVALID_REQUEST, APPID_MCHID_NOT_MATCH, 403 REQUEST_BLOCKED, NOT_ENOUGH,
//                   USER_ACCOUNT_ABNORMAL, 404 RESOURCE_NOT_EXISTS, other 4xx): permanent for
//                   the row until its desired values change.
//   "tenant_error"  the calling merchant's credentials or permissions are wrong (401 any code,
//                   SIGN_ERROR at any status, 403 NO_AUTH), or the tenant's response-verification
//                   keys do not match what WeChat Pay signs with (2xx with unknown serial,
//                   unsupported signature type or a bad signature): every row of the tenant
//                   would fail the same way, so the tenant is paused and probed, the row is not
//                   blamed.
//   "rate_limited"  429 (any code), or a FREQUENCY_LIMIT* code: slow the tenant down, retry the
//                   row after Retry-After if given; not a failure of the row.
//   "transient"     5xx, 408, network error, timeout, a 2xx with missing/stale signature
//                   headers or undecodable signature, a verified 2xx whose body does not parse,
//                   1xx/3xx: retry with backoff and jitter.
//   "invalid"       never produced here: the desired row failed validation and was not sent
//                   (desired/validation.h); listed so that all audit names live in one place.
//
// Why a 2xx that fails verification is never "applied", and why it is split: a response whose
// signature headers are missing, stale or mangled is most likely from something between us
// and WeChat Pay (a proxy, a gateway error page) or a momentary clock problem, so retrying
// helps. A well-formed signature that names a key we do not have, or that does not verify
// under the key registered for its serial, means the tenant's wechatpay_key_id / key file is
// wrong or rotated: retrying cannot help until an operator fixes it, so it is tenant-wide.
// The endpoint is idempotent (it sets a value), so repeating a request that WeChat Pay may in
// fact have applied is harmless.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/verification.h"

namespace callbackd::wechatpay {

enum class OutcomeKind { applied, rejected, tenant_error, rate_limited, transient, invalid };

// The stable short name above ("applied", "rejected", …).
std::string_view outcome_name(OutcomeKind kind);

// How the request failed below HTTP, as the transport saw it.
enum class TransportFailure {
  resolve,             // DNS
  connect,             // TCP connect refused / unreachable
  tls,                 // handshake or certificate verification failed
  timeout,             // a deadline expired (connect, write, read)
  connection_closed,   // peer closed or reset mid-exchange (stale keep-alive)
  response_too_large,  // over wechatpay.max_response_bytes
  protocol,            // unparseable HTTP
};
std::string_view transport_failure_name(TransportFailure failure);

// Everything observed about one attempt. Either `transport_failure` is set (no HTTP response),
// or `http_status` is. `verification` must be filled for every 2xx (the caller runs
// verify_response on it); it is ignored for other statuses, which WeChat Pay does not sign.
struct AttemptObservation {
  std::optional<TransportFailure> transport_failure;
  std::string transport_message;  // the transport's own words (e.g. boost error message)
  int http_status = 0;
  ResponseHeaders headers;
  std::string_view body;
  std::optional<Result<VerifiedResponse, VerifyError>> verification;
};

struct Outcome {
  OutcomeKind kind = OutcomeKind::transient;
  std::optional<int> http_status;       // nullopt when no response
  std::string error_code;               // WeChat Pay's code ("PARAM_ERROR"), or ours:
                                        // "NETWORK_ERROR", "TIMEOUT", "HTTP_<status>",
                                        // "RESPONSE_SIGNATURE_<KIND>", "MALFORMED_RESPONSE"; "" if applied
  std::string error_message;            // for the operator; bounded (kMaxErrorMessageBytes + context)
  std::optional<std::string> request_id;  // Request-ID, when present
  std::optional<std::chrono::seconds> retry_after;  // rate_limited/transient: server's Retry-After
  std::optional<FavorCallbacksApplied> applied;     // set exactly when kind == applied
};

Outcome classify_attempt(const AttemptObservation& observation);

// Retry-After as delta-seconds ("120"); HTTP-dates and garbage give nullopt. Capped at 3600 s.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value);

}  // namespace callbackd::wechatpay
