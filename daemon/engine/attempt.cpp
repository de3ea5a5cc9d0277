#include "engine/attempt.h"

#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/live_read.h"
#include "core/wechatpay/signing.h"
#include "core/wechatpay/verification.h"

namespace callbackd::engine {

namespace {

// Signs `method target body` exactly as they will be sent.
Result<http::HttpRequest, std::string> signed_request(const TenantCredentials& tenant, std::string method,
                                                      std::string target, std::string body, std::int64_t unix_seconds) {
  http::HttpRequest req;
  req.method = std::move(method);
  req.target = std::move(target);
  req.body = std::move(body);
  auto nonce = wechatpay::make_nonce();
  if (!nonce) return nonce.error().message;
  auto auth =
      wechatpay::authorization_header(tenant.merchant, req.method, req.target, req.body, unix_seconds, nonce.value());
  if (!auth) return auth.error().message;
  req.authorization = std::move(auth).value();
  // Selects which key WeChat Pay signs the response with during a key migration.
  // (None yet in certificate mode before the first download.)
  if (!tenant.wechatpay_serial.empty()) req.wechatpay_serial = tenant.wechatpay_serial;
  return req;
}

}  // namespace

Result<http::HttpRequest, std::string> signed_favor_callbacks_request(const TenantCredentials& tenant,
                                                                      const std::string& sub_mchid,
                                                                      const std::string& notify_url,
                                                                      std::optional<bool> push_switch,
                                                                      std::int64_t unix_seconds) {
  return signed_request(tenant, "POST", std::string(wechatpay::kFavorCallbacksPath),
                        wechatpay::favor_callbacks_request_body(sub_mchid, notify_url, push_switch), unix_seconds);
}

Result<http::HttpRequest, std::string> signed_favor_callbacks_read(const TenantCredentials& tenant,
                                                                   const std::string& sub_mchid,
                                                                   std::int64_t unix_seconds) {
  // The signed URL is the target with its query string; a GET signs an empty body.
  return signed_request(tenant, "GET", wechatpay::favor_callbacks_read_target(sub_mchid), "", unix_seconds);
}

namespace {

wechatpay::TransportFailure transport_failure(http::TransportErrorKind kind) {
  using K = http::TransportErrorKind;
  using F = wechatpay::TransportFailure;
  switch (kind) {
    case K::resolve:
      return F::resolve;
    case K::connect:
      return F::connect;
    case K::tls:
      return F::tls;
    case K::timeout:
      return F::timeout;
    case K::closed:
      return F::connection_closed;
    case K::too_large:
      return F::response_too_large;
    case K::malformed:
      return F::protocol;
    case K::config:
    case K::io:
      break;
  }
  return F::connection_closed;
}

}  // namespace

namespace {

wechatpay::AttemptObservation observe(const TenantCredentials& tenant,
                                      const Result<http::HttpResponse, http::TransportError>& response,
                                      std::chrono::system_clock::time_point now) {
  wechatpay::AttemptObservation obs;
  if (!response) {
    obs.transport_failure = transport_failure(response.error().kind);
    obs.transport_message = response.error().message;
    return obs;
  }
  const http::HttpResponse& r = response.value();
  obs.http_status = r.status;
  obs.headers = http::response_headers(r);
  obs.body = r.body;
  if (r.status >= 200 && r.status < 300)
    obs.verification = wechatpay::verify_response(tenant.response_keys, obs.headers, r.body, now);
  return obs;
}

}  // namespace

wechatpay::Outcome classify_response(const TenantCredentials& tenant,
                                     const Result<http::HttpResponse, http::TransportError>& response,
                                     std::chrono::system_clock::time_point now, std::string_view sent_notify_url) {
  wechatpay::AttemptObservation obs = observe(tenant, response, now);
  obs.sent_notify_url = sent_notify_url;
  return wechatpay::classify_attempt(obs);
}

wechatpay::ReadOutcome classify_read_response(const TenantCredentials& tenant,
                                              const Result<http::HttpResponse, http::TransportError>& response,
                                              std::chrono::system_clock::time_point now, std::string_view sub_mchid) {
  return wechatpay::classify_read(observe(tenant, response, now), sub_mchid);
}

bool names_unknown_platform_certificate(const TenantCredentials& tenant,
                                        const Result<http::HttpResponse, http::TransportError>& response,
                                        std::chrono::system_clock::time_point now) {
  if (!tenant.apiv3_key || !response || response.value().status < 200 || response.value().status >= 300) return false;
  const auto& r = response.value();
  const auto verified = wechatpay::verify_response(tenant.response_keys, http::response_headers(r), r.body, now);
  return !verified && verified.error().kind == wechatpay::VerifyError::Kind::unknown_serial;
}

reconcile::EndpointReach reach_of(const Result<http::HttpResponse, http::TransportError>& response,
                                  const wechatpay::Outcome& outcome) {
  if (!response && response.error().host_unreachable) return reconcile::EndpointReach::unreachable;
  if (response && outcome.answered_by == wechatpay::Answerer::other) return reconcile::EndpointReach::not_wechatpay;
  return reconcile::EndpointReach::reached;
}

}  // namespace callbackd::engine
