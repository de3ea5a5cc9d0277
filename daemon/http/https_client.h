// The HTTPS adapter that speaks to WeChat Pay (or to callbackd-sandbox on loopback).
//
// What it promises:
//  - TLS always verifies the peer certificate chain AND the host name (SNI is sent for DNS
//    names; IP literals are checked against IP SANs). `WechatpayConfig::ca_file` adds a CA
//    bundle to the system store. There is deliberately no way to turn verification off.
//  - With wechatpay.source_addresses, every connection is bound to the request's source
//    address before it connects (one pool per host and source address); the constructor
//    checks that each can be bound (StartupError naming it otherwise).
//  - Keep-alive connections are pooled per host, at most `max_connections_per_host` each
//    (idle + busy); a request that finds the pool full waits for a slot within its deadline.
//  - Every phase has a deadline: resolve, connect and TLS handshake `connect_timeout` each,
//    write + read together `request_timeout`; the whole call (pool wait, failover, the stale
//    retry included) at most 2 * connect_timeout + request_timeout. Response headers are
//    bounded (16 KiB) and bodies by `max_response_bytes`.
//  - Network failures, timeouts and hostile responses are TransportError VALUES; nothing here
//    throws at runtime. Only the constructor throws (StartupError) for a bad URL or CA file.
//
// Beast stays inside https_client.cpp; this header exposes only Asio's io_context and
// awaitable, so that callers compile fast.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/host_scope.h"
#include "core/wechatpay/verification.h"

namespace callbackd::http {

// One API call. `target` is the path plus query exactly as signed (`/v3/...?mchid=...`).
struct HttpRequest {
  std::string method{"POST"};
  std::string target;
  std::string body;                             // sent byte for byte (the signed bytes)
  std::string authorization;                    // the caller's `WECHATPAY2-SHA256-RSA2048 ...`
  std::optional<std::string> wechatpay_serial;  // key id we can verify; selects the signing key
  // Which of wechatpay.source_addresses to send from (its index; ignored without them).
  std::size_t source = 0;
  // Called each time the request is about to be written to a connection (once, or again on
  // the retry after a stale pooled connection), on the client's thread: the instant the
  // request leaves, after any wait for the pool and any TLS handshake. The pacers count a
  // request from then (reconcile::Pacer::written).
  std::function<void()> on_write;
};

struct HttpResponse {
  int status{0};
  std::string body;
  std::string request_id;                  // `Request-ID`, empty when absent
  std::optional<std::string> retry_after;  // `Retry-After` (429/503), as received
  // Every `Wechatpay-*` header, names as received (the verifier looks them up case-insensitively).
  std::vector<std::pair<std::string, std::string>> wechatpay_headers;
  std::string host;               // the host that answered ("api.mch.weixin.qq.com" or the backup)
  bool used_backup{false};        // the primary could not be reached; the backup answered
  bool reused_connection{false};  // answered on a pooled keep-alive connection
  bool retried_on_fresh{false};   // a stale pooled connection failed first (see https_client.cpp)
  std::chrono::milliseconds latency{0};

  // Case-insensitive lookup among wechatpay_headers; nullopt when absent.
  std::optional<std::string> header(std::string_view name) const;
};

// Response headers beyond this are hostile or broken; WeChat Pay's are well under 2 KiB.
inline constexpr std::uint32_t kMaxResponseHeaderBytes = 16 * 1024;

// Records one header field of a received response in `response` if the daemon uses it
// (Request-ID, Retry-After, every Wechatpay-*); others are dropped. Split out of the reader so
// that the http_response fuzz target runs the same code on parsed bytes.
void keep_response_header(HttpResponse& response, std::string_view name, std::string_view value);

// The headers wechatpay::verify_response() needs, from a response.
wechatpay::ResponseHeaders response_headers(const HttpResponse& response);

enum class TransportErrorKind {
  config,     // the request itself is unusable (bad target); a bug of the caller
  resolve,    // DNS failed
  connect,    // TCP connect failed (refused, unreachable)
  tls,        // TLS handshake failed: untrusted certificate, wrong host name, protocol error
  timeout,    // a phase or the overall deadline expired (also: no pool slot in time)
  closed,     // the server closed or reset the connection before the response was complete
  too_large,  // the response header or body exceeded its bound
  malformed,  // the response was not valid HTTP/1.1
  io,         // any other socket error while writing or reading
};

std::string_view to_string(TransportErrorKind kind);

struct TransportError {
  TransportErrorKind kind{TransportErrorKind::io};
  std::string message;       // for logs and the audit row; never contains the Authorization header
  std::string host;          // the host it happened on
  bool request_sent{false};  // true once any request byte was written: WeChat Pay MAY have applied it
  // No connection to any configured host could be made (resolve, connect, TLS handshake, or
  // one of their deadlines): the endpoint is unreachable, whatever the request. Not set for a
  // wait for a pool slot, nor for anything after a connection was made.
  bool host_unreachable{false};
};

// Counters for metrics and tests.
struct ClientStats {
  std::uint64_t connections_opened{0};
  std::uint64_t connections_reused{0};
  std::uint64_t stale_discarded{0};  // pooled connections found closed by the server before use
  std::uint64_t stale_retries{0};    // requests retried once on a fresh connection
  std::uint64_t failovers{0};        // requests that went to the backup host
};

// What the run loop needs of a client (engine tests put a scripted WeChat Pay behind it).
class Sender {
 public:
  virtual ~Sender() = default;
  // Sends one request and reads the whole response. Any HTTP status is a success at this
  // layer (4xx/5xx are classified by the caller); only transport failures are errors.
  virtual boost::asio::awaitable<Result<HttpResponse, TransportError>> send(HttpRequest request) = 0;
  // A config reload (SIGHUP): returns the keys of `config` that need a restart (empty: none).
  virtual std::vector<std::string> reconfigure(const WechatpayConfig& config) = 0;
};

// Async client. All calls must run on ONE thread of the io_context given to the constructor
// (the reconciler runs many requests concurrently as coroutines on that thread); the pool is
// not locked. Destroying the client closes idle connections; requests still running keep the
// shared state alive until they finish.
class HttpsClient final : public Sender {
 public:
  // Throws StartupError when base_url/backup_url are not `https://host[:port]` or ca_file
  // cannot be loaded.
  HttpsClient(boost::asio::io_context& io, const WechatpayConfig& config);
  ~HttpsClient() override;
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  boost::asio::awaitable<Result<HttpResponse, TransportError>> send(HttpRequest request) override;

  // The timeouts, idle_timeout, the pool size and the response bound apply to requests
  // started from now on (one in flight keeps the overall deadline it started with). The
  // hosts and the CA file are fixed at construction: those keys are returned when they differ.
  std::vector<std::string> reconfigure(const WechatpayConfig& config) override;

  // Drops all idle pooled connections (shutdown, tests).
  void close_idle();
  ClientStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Convenience for tools and tests: a private io_context, one request, blocking.
Result<HttpResponse, TransportError> send_blocking(const WechatpayConfig& config, HttpRequest request);

// `https://host[:port]` split into its parts (core/host_scope.h: the config reads URLs the same way).
using callbackd::HttpsEndpoint;
using callbackd::parse_https_url;

}  // namespace callbackd::http
