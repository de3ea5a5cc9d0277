// One attempt at one sub-merchant, the glue between the HTTPS client and the protocol core:
// build the signed request, then turn what came back into an Outcome. No scheduling, no
// database: the reconciler does those.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/reconcile/endpoint_hold.h"
#include "core/tenant.h"
#include "core/wechatpay/live_read.h"
#include "core/wechatpay/outcome.h"
#include "http/https_client.h"

namespace callbackd::engine {

// The request for POST /v3/marketing/favor/callbacks, body serialised once and signed as sent.
// Fails only when OpenSSL cannot sign (CryptoError message).
Result<http::HttpRequest, std::string> signed_favor_callbacks_request(const TenantCredentials& tenant,
                                                                      const std::string& sub_mchid,
                                                                      const std::string& notify_url,
                                                                      std::optional<bool> push_switch,
                                                                      std::int64_t unix_seconds);

// The read call GET /v3/marketing/favor/callbacks?mchid=M (core/wechatpay/live_read.h), signed
// with its query string and an empty body.
Result<http::HttpRequest, std::string> signed_favor_callbacks_read(const TenantCredentials& tenant,
                                                                   const std::string& sub_mchid,
                                                                   std::int64_t unix_seconds);

// Verifies a 2xx against the tenant's response keys at `now`, then classifies.
// `sent_notify_url` is compared with a verified 2xx's echo (a difference is a warning).
wechatpay::Outcome classify_response(const TenantCredentials& tenant,
                                     const Result<http::HttpResponse, http::TransportError>& response,
                                     std::chrono::system_clock::time_point now, std::string_view sent_notify_url);

// The same for a read: what WeChat Pay holds for `sub_mchid`, or why the read failed.
wechatpay::ReadOutcome classify_read_response(const TenantCredentials& tenant,
                                              const Result<http::HttpResponse, http::TransportError>& response,
                                              std::chrono::system_clock::time_point now, std::string_view sub_mchid);

// Certificate mode: a 2xx whose Wechatpay-Serial names no certificate the tenant has (its first
// response, or WeChat Pay moved to a new certificate). The platform certificates are then
// downloaded and the response verified again (engine/certificate_keeper.h).
bool names_unknown_platform_certificate(const TenantCredentials& tenant,
                                        const Result<http::HttpResponse, http::TransportError>& response,
                                        std::chrono::system_clock::time_point now);

// Whether the attempt reached WeChat Pay (core/reconcile/endpoint_hold.h): unreachable exactly
// when no connection could be made to any configured host; not_wechatpay when something
// answered that was not WeChat Pay (`outcome`, from classify_response: Answerer::other).
reconcile::EndpointReach reach_of(const Result<http::HttpResponse, http::TransportError>& response,
                                  const wechatpay::Outcome& outcome);

}  // namespace callbackd::engine
