#include "core/wechatpay/outcome.h"

#include "core/wechatpay/encoding.h"

namespace callbackd::wechatpay {
namespace {

constexpr std::size_t kMaxTransportMessageBytes = 256;
constexpr std::size_t kMaxRequestIdBytes = 128;
constexpr std::chrono::seconds kMaxRetryAfter{3600};
// Of a body that is not WeChat Pay's (an HTML page): enough to recognise whose it is.
constexpr std::size_t kBodyExcerptBytes = 96;
constexpr std::size_t kEchoExcerptBytes = 128;

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

// A 2xx that failed verification. Split by what retrying can change (see outcome.h).
OutcomeKind verification_failure_kind(VerifyError::Kind kind) {
  switch (kind) {
    case VerifyError::Kind::unknown_serial:
    case VerifyError::Kind::unsupported_signature_type:
    case VerifyError::Kind::bad_signature:
      return OutcomeKind::tenant_error;
    case VerifyError::Kind::missing_header:
    case VerifyError::Kind::bad_timestamp:
    case VerifyError::Kind::stale_timestamp:
    case VerifyError::Kind::bad_base64:
      return OutcomeKind::transient;
  }
  return OutcomeKind::transient;
}

// Codes that say the calling merchant (tenant), not the row, is at fault.
bool is_tenant_code(std::string_view code) { return code == "SIGN_ERROR" || code == "NO_AUTH"; }

bool has_signature_headers(const ResponseHeaders& h) {
  auto present = [](const std::optional<std::string>& v) { return v && !v->empty(); };
  return present(h.timestamp) && present(h.nonce) && present(h.signature) && present(h.serial);
}

// Echoed as sent, or without the scheme (the seed's example: "api.weixin.qq.com").
bool same_notify_url(std::string_view echoed, std::string_view sent) {
  if (echoed == sent) return true;
  for (std::string_view scheme : {"https://", "http://"})
    if (sent.starts_with(scheme) && echoed == sent.substr(scheme.size())) return true;
  return false;
}

void classify_error_status(const AttemptObservation& obs, Outcome& out) {
  const int status = obs.http_status;
  const ApiError api = parse_error_body(obs.body);
  if (api.wechatpay_format) {
    out.error_code = api.code;
    out.error_message = api.message;
  } else {
    out.error_code = "HTTP_" + std::to_string(status);
    out.error_message = "HTTP " + std::to_string(status) + " without a WeChat Pay error body";
    if (!obs.body.empty()) out.error_message += ": \"" + excerpt(obs.body, kBodyExcerptBytes) + "\"";
  }
  out.answered_by = api.wechatpay_format || has_signature_headers(obs.headers) ? Answerer::wechatpay : Answerer::other;

  if (status == 429 || (api.wechatpay_format && api.code.starts_with("FREQUENCY_LIMIT"))) {
    out.kind = OutcomeKind::rate_limited;
  } else if (status >= 500) {
    out.kind = OutcomeKind::transient;
  } else if (status < 400) {
    // 1xx / 3xx: nothing WeChat Pay sends for this endpoint; a proxy or redirect in the path.
    out.kind = OutcomeKind::transient;
    out.error_code = "HTTP_" + std::to_string(status);
    out.error_message = "unexpected HTTP " + std::to_string(status) + " (redirects are not followed)";
  } else if (!api.wechatpay_format) {
    // Not WeChat Pay's verdict (see outcome.h): a proxy's or WAF's page, an empty 413, a bare
    // 401. Nothing is known about the row or the tenant; try again.
    out.kind = OutcomeKind::transient;
  } else if (status == 401 || is_tenant_code(api.code)) {
    out.kind = OutcomeKind::tenant_error;
  } else if (status == 408 || api.code == "SYSTEM_ERROR") {
    out.kind = OutcomeKind::transient;  // the server gave up waiting, or says it failed: try again
  } else {
    // WeChat Pay's error body at a 4xx, the seed's codes and any other: this request, as
    // built from this row, was refused; sending it again unchanged cannot succeed.
    out.kind = OutcomeKind::rejected;
  }
  if (obs.headers.retry_after && (out.kind == OutcomeKind::rate_limited || out.kind == OutcomeKind::transient))
    out.retry_after = parse_retry_after(*obs.headers.retry_after);
}

}  // namespace

std::string_view outcome_name(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::applied:
      return "applied";
    case OutcomeKind::rejected:
      return "rejected";
    case OutcomeKind::tenant_error:
      return "tenant_error";
    case OutcomeKind::rate_limited:
      return "rate_limited";
    case OutcomeKind::transient:
      return "transient";
    case OutcomeKind::invalid:
      return "invalid";
  }
  return "transient";
}

std::string_view answerer_name(Answerer answerer) {
  switch (answerer) {
    case Answerer::none:
      return "none";
    case Answerer::wechatpay:
      return "wechatpay";
    case Answerer::other:
      return "other";
  }
  return "none";
}

std::string_view transport_failure_name(TransportFailure failure) {
  switch (failure) {
    case TransportFailure::resolve:
      return "resolve";
    case TransportFailure::connect:
      return "connect";
    case TransportFailure::tls:
      return "tls";
    case TransportFailure::timeout:
      return "timeout";
    case TransportFailure::connection_closed:
      return "connection_closed";
    case TransportFailure::response_too_large:
      return "response_too_large";
    case TransportFailure::protocol:
      return "protocol";
  }
  return "transport";
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) {
  if (value.empty() || value.size() > 10) return std::nullopt;
  std::int64_t seconds = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  return std::chrono::seconds{seconds < kMaxRetryAfter.count() ? seconds : kMaxRetryAfter.count()};
}

Outcome classify_attempt(const AttemptObservation& obs) {
  Outcome out;
  if (obs.headers.request_id && !obs.headers.request_id->empty())
    out.request_id = excerpt(*obs.headers.request_id, kMaxRequestIdBytes);

  if (obs.transport_failure) {
    out.kind = OutcomeKind::transient;
    out.error_code = *obs.transport_failure == TransportFailure::timeout ? "TIMEOUT" : "NETWORK_ERROR";
    out.error_message = std::string(transport_failure_name(*obs.transport_failure));
    if (!obs.transport_message.empty())
      out.error_message += ": " + excerpt(obs.transport_message, kMaxTransportMessageBytes);
    return out;
  }

  const int status = obs.http_status;
  if (status < 100 || status > 599) {
    out.kind = OutcomeKind::transient;
    out.error_code = "HTTP_" + std::to_string(status);
    out.error_message = "invalid HTTP status " + std::to_string(status);
    out.answered_by = Answerer::other;
    return out;
  }
  out.http_status = status;
  if (status < 200 || status >= 300) {
    classify_error_status(obs, out);
    return out;
  }

  // 2xx: only a verified response can count as applied (docs/wechatpay-v3.md section 2).
  if (has_signature_headers(obs.headers))
    out.answered_by = Answerer::wechatpay;
  else
    out.answered_by = Answerer::other;
  if (!obs.verification) {
    out.kind = OutcomeKind::transient;
    out.error_code = "RESPONSE_NOT_VERIFIED";
    out.error_message = "a 2xx response reached classification without signature verification";
    return out;
  }
  if (!*obs.verification) {
    const VerifyError& failure = obs.verification->error();
    out.kind = verification_failure_kind(failure.kind);
    out.error_code = "RESPONSE_SIGNATURE_" + upper(verify_error_name(failure.kind));
    out.error_message = failure.message;
    return out;
  }
  // Verified: WeChat Pay applied the change, whatever the body says (outcome.h).
  out.answered_by = Answerer::wechatpay;
  FavorCallbacksReading reading = read_favor_callbacks_response(obs.body);
  out.kind = OutcomeKind::applied;
  if (reading.problem) out.warning = std::move(reading.problem->message);
  const std::string& echoed = reading.applied.notify_url;
  if (!obs.sent_notify_url.empty() && !echoed.empty() && !same_notify_url(echoed, obs.sent_notify_url)) {
    if (!out.warning.empty()) out.warning += "; ";
    out.warning += "notify_url echoed as \"" + excerpt(echoed, kEchoExcerptBytes) + "\", sent \"" +
                   excerpt(obs.sent_notify_url, kEchoExcerptBytes) + "\"";
  }
  out.applied = std::move(reading.applied);
  return out;
}

}  // namespace callbackd::wechatpay
