// What one attempt to set a sub-merchant's notify URL came to, and what the reconciler must
// do next. A pure function of what was observed; never throws, whatever the bytes.
//
// Outcome names (stable; stored in callbackd.audit_log.outcome, used in metrics and logs):
//   "applied"       a 2xx whose signature verified: the row is in sync. WeChat Pay signed it,
//                   so it applied the change, whatever the body says; a body that is not the
//                   documented one is recorded with a `warning` (below), never retried.
//   "rejected"      WeChat Pay refused this row: its JSON error body (400 PARAM_ERROR,
//                   MCH_NOT_EXISTS, INVALID_REQUEST, APPID_MCHID_NOT_MATCH, 403
//                   REQUEST_BLOCKED, NOT_ENOUGH, USER_ACCOUNT_ABNORMAL, 404 RESOURCE_NOT_EXISTS,
//                   any other code at a 4xx): permanent for the row until its desired values
//                   change.
//   "tenant_error"  the calling merchant's credentials or permissions are wrong (401 with
//                   WeChat Pay's error body, any code; SIGN_ERROR at any status, 403 NO_AUTH),
//                   or the tenant's response-verification keys do not match what WeChat Pay
//                   signs with (2xx with unknown serial, unsupported signature type or a bad
//                   signature): every row of the tenant would fail the same way, so the tenant
//                   is paused and probed, the row is not blamed.
//   "rate_limited"  429 (any code, with or without a body), or a FREQUENCY_LIMIT* code: slow
//                   the tenant down, retry the row after Retry-After if given; not a failure
//                   of the row.
//   "transient"     5xx, 408, network error, timeout, a 2xx with missing/stale signature
//                   headers or undecodable signature, 1xx/3xx, and any 4xx WITHOUT WeChat
//                   Pay's JSON error body (an HTML 403 or 404 of a proxy or WAF, an empty
//                   413, a bare 401): retry with backoff and jitter.
//   "invalid"       never produced here: the desired row failed validation and was not sent
//                   (desired/validation.h); listed so that all audit names live in one place.
//
// Only WeChat Pay's own error body ({"code","message"}, ApiError::wechatpay_format) is a
// verdict on the row or the tenant. Anything else between us and WeChat Pay (a forward proxy,
// a WAF, a load balancer) may answer with any status, and then says nothing about the row: a
// proxy's 403 page parked as "rejected" would fail every row until its desired state changed,
// and a gateway's bare 401 would pause a tenant whose credentials are fine. So such answers
// are transient; `answered_by` says they were not WeChat Pay's, and when they repeat across
// rows the engine holds the path (reconcile/endpoint_hold.h), not the rows. A bodyless 429
// stays rate_limited: slowing down is right whoever asks for it.
//
// Why a 2xx that fails verification is never "applied", and why it is split: a response whose
// signature headers are missing, stale or mangled is most likely from something between us
// and WeChat Pay (a proxy, a gateway error page) or a momentary clock problem, so retrying
// helps. A well-formed signature that names a key we do not have, or that does not verify
// under the key registered for its serial, means the tenant's wechatpay_key_id / key file is
// wrong or rotated: retrying cannot help until an operator fixes it, so it is tenant-wide.
// The endpoint is idempotent (it sets a value), so repeating a request that WeChat Pay may in
// fact have applied is harmless.
//
// Why a verified 2xx is "applied" even when its body is odd: the signature proves WeChat Pay
// sent exactly these bytes with a success status, i.e. it applied the change. Retrying
// cannot change what it writes (one row was sent 164 times for an update_time in the seed's
// own prose form), so:
//   - update_time in a form parse_update_time does not know, or absent: applied, the text
//     kept verbatim (update_time_parsed NULL), warning "update_time is not RFC 3339: …";
//   - a body that is not JSON at all (or cut off, or over 64 KiB): applied with nothing to
//     keep, warning "response body is not a JSON object: …";
//   - an echoed notify_url other than the one sent (compared as sent, or without its
//     "https://", as the seed's example echoes it): applied, warning naming both. What is
//     recorded as applied is what was sent (sync_status.applied_notify_url): that is the
//     request WeChat Pay signed its success for.
// The warning goes to the audit row's error_message (error_code stays NULL, outcome
// `applied`) and to a warn log line (event=applied_with_warning).
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
  // The notify_url the request carried, to compare with a 2xx's echo ("": not compared).
  std::string_view sent_notify_url{};
};

// Who gave the answer, as far as can be told without trusting it.
enum class Answerer {
  none,       // no HTTP answer (a transport failure)
  wechatpay,  // WeChat Pay's signature headers (Wechatpay-Timestamp, -Nonce, -Signature,
              // -Serial), or a non-2xx with WeChat Pay's JSON error body
  other,      // an HTTP answer with neither: a proxy's, a WAF's or a gateway's
};
std::string_view answerer_name(Answerer answerer);

struct Outcome {
  OutcomeKind kind = OutcomeKind::transient;
  std::optional<int> http_status;                   // nullopt when no response
  std::string error_code;                           // WeChat Pay's code ("PARAM_ERROR"), or ours:
                                                    // "NETWORK_ERROR", "TIMEOUT", "HTTP_<status>",
                                                    // "RESPONSE_SIGNATURE_<KIND>"; "" if applied
  std::string error_message;                        // for the operator; bounded (kMaxErrorMessageBytes + context)
  std::optional<std::string> request_id;            // Request-ID, when present
  std::optional<std::chrono::seconds> retry_after;  // rate_limited/transient: server's Retry-After
  std::optional<FavorCallbacksApplied> applied;     // set exactly when kind == applied
  std::string warning{};  // applied only: what was odd about the verified answer ("" if nothing)
  Answerer answered_by = Answerer::none;
};

Outcome classify_attempt(const AttemptObservation& observation);

// Retry-After as delta-seconds ("120"); HTTP-dates and garbage give nullopt. Capped at 3600 s.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value);

}  // namespace callbackd::wechatpay
