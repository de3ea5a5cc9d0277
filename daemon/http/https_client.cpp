// The only translation unit of callbackd that includes Beast on the client side (Beast TUs
// take ~20 s to compile; keep them few).
#include "http/https_client.h"  // first: it includes the Boost 1.74 + g++ 12 fixes

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <deque>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/reconcile/lease_timing.h"

namespace callbackd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool has_crlf(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

struct Connection {
  Connection(asio::io_context& io, ssl::context& ctx) : stream(io, ctx) {}
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  Clock::time_point idle_since{};
  // Filled by the verify callback when a certificate is outside its validity period: OpenSSL
  // drops the peer certificate of a failed handshake, and the dates are what explain it.
  std::string validity_detail;

  tcp::socket& socket() { return beast::get_lowest_layer(stream).socket(); }
  void close() {
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }
};

// One pool per configured host (primary, backup).
struct HostPool {
  HttpsEndpoint endpoint;
  // The local address its connections are bound to (wechatpay.source_addresses); none: the
  // kernel's choice.
  std::optional<asio::ip::address> source;
  std::string host_header;  // "host" or "host:port"
  bool is_ip_literal{false};
  std::vector<std::unique_ptr<Connection>> idle;            // most recently used at the back
  std::size_t open{0};                                      // idle + busy connections
  std::deque<std::shared_ptr<asio::steady_timer>> waiters;  // requests waiting for a slot

  // Waiters' timers are cancelled to wake them; each re-checks the pool and waits again if it
  // lost the race. Waking all (few, bounded by concurrency) never loses a wake-up.
  void wake_waiters() {
    for (auto& w : waiters) w->cancel();
    waiters.clear();
  }
};

// The connection a request is using, and its pool slot. Leaving scope without give_back()
// closes the connection and frees the slot, so no error path can leak a slot.
class Lease {
 public:
  Lease(HostPool* pool, std::unique_ptr<Connection> conn, bool reused)
      : pool_(pool), conn_(std::move(conn)), reused_(reused) {}
  Lease(Lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), conn_(std::move(o.conn_)), reused_(o.reused_) {}
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  ~Lease() { discard(); }

  Connection& conn() { return *conn_; }
  // A lease without a connection is a reserved slot while connecting.
  void attach(std::unique_ptr<Connection> conn) { conn_ = std::move(conn); }
  bool reused() const { return reused_; }

  void give_back() {
    if (!pool_) return;
    conn_->idle_since = Clock::now();
    pool_->idle.push_back(std::move(conn_));
    pool_->wake_waiters();
    pool_ = nullptr;
  }
  void discard() {
    if (!pool_) return;
    if (conn_) conn_->close();
    conn_.reset();
    CALLBACKD_ASSERT(pool_->open > 0);
    --pool_->open;
    pool_->wake_waiters();
    pool_ = nullptr;
  }

 private:
  HostPool* pool_;
  std::unique_ptr<Connection> conn_;
  bool reused_;
};

// True when the server has not closed an idle connection: no EOF and no unsolicited bytes
// (a TLS close_notify alert arrives as bytes). A non-blocking peek costs one syscall and
// catches the common case (WeChat Pay closes idle connections after ~8 s) before we write.
bool looks_alive(Connection& c) {
  if (!c.socket().is_open() || c.buffer.size() != 0) return false;
  char byte = 0;
  const ssize_t n = ::recv(c.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n >= 0) return false;  // 0: FIN received; >0: data we did not ask for
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

bool is_closed_by_peer(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

TransportError make_error(TransportErrorKind kind, std::string message, const HostPool& pool, bool sent) {
  return TransportError{kind, std::move(message), pool.endpoint.host, sent};
}

// Classifies a failure while writing the request or reading the response.
TransportErrorKind classify_exchange_error(const error_code& ec) {
  if (ec == beast::error::timeout) return TransportErrorKind::timeout;
  if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
    return TransportErrorKind::too_large;
  if (is_closed_by_peer(ec)) return TransportErrorKind::closed;
  if (ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category())
    return TransportErrorKind::malformed;
  return TransportErrorKind::io;
}

// "2026-11-30 13:00:00 UTC" for an ASN1_TIME, "?" if it cannot be read.
std::string asn1_time_text(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// A date error is either a server that let its certificate lapse or this host's clock being
// wrong; the validity period next to our own time tells the operator which. Never rejects
// anything itself: it only takes note of OpenSSL's verdict.
bool note_validity(Connection& c, bool preverified, ssl::verify_context& ctx) {
  X509_STORE_CTX* store = ctx.native_handle();
  const int error = X509_STORE_CTX_get_error(store);
  if (!preverified && c.validity_detail.empty() &&
      (error == X509_V_ERR_CERT_HAS_EXPIRED || error == X509_V_ERR_CERT_NOT_YET_VALID)) {
    if (const X509* cert = X509_STORE_CTX_get_current_cert(store)) {
      // Which certificate of the chain: the server's own or a CA's. OpenSSL escapes the name.
      char subject[256] = "?";
      X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
      ASN1_TIME* now = X509_gmtime_adj(nullptr, 0);
      c.validity_detail = std::string(subject) + " valid " + asn1_time_text(X509_get0_notBefore(cert)) + " to " +
                          asn1_time_text(X509_get0_notAfter(cert)) + ", this host's clock says " + asn1_time_text(now);
      ASN1_TIME_free(now);
    }
  }
  return preverified;
}

std::string tls_failure_message(Connection& c, const error_code& ec) {
  const long verify = SSL_get_verify_result(c.stream.native_handle());
  if (verify == X509_V_OK) return "TLS handshake failed: " + ec.message();
  std::string message = std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify);
  if (!c.validity_detail.empty()) message += " (" + c.validity_detail + ")";
  return message;
}

}  // namespace

struct HttpsClient::Impl {
  Impl(asio::io_context& io_, const WechatpayConfig& cfg) : io(io_), config(cfg), tls(ssl::context::tls_client) {}

  asio::io_context& io;
  WechatpayConfig config;
  ssl::context tls;
  // Per source address (one without source_addresses), its hosts: [0] primary, [1] backup if
  // configured. pools[source * hosts_per_source + host].
  std::vector<std::unique_ptr<HostPool>> pools;
  std::size_t hosts_per_source{1};
  ClientStats stats;

  struct CheckoutFailure {
    TransportError error;
    bool host_unreachable;  // no connection could be made (not: waited too long for a slot)
  };

  // Waits for a pooled connection that still looks alive, or for a free slot to open a new
  // one. `fresh_only` skips pooled connections (the retry after a stale one failed).
  awaitable<Result<Lease, CheckoutFailure>> checkout(HostPool& pool, Clock::time_point deadline, bool fresh_only) {
    for (;;) {
      while (!fresh_only && !pool.idle.empty()) {
        std::unique_ptr<Connection> c = std::move(pool.idle.back());
        pool.idle.pop_back();
        const bool too_old = Clock::now() - c->idle_since >= config.idle_timeout;
        if (!too_old && looks_alive(*c)) {
          ++stats.connections_reused;
          co_return Lease(&pool, std::move(c), true);
        }
        ++stats.stale_discarded;
        Lease(&pool, std::move(c), true).discard();
      }
      if (pool.open < std::max<std::size_t>(config.max_connections_per_host, 1)) {
        ++pool.open;
        Lease lease(&pool, nullptr, false);
        auto made = co_await connect(pool, deadline);
        if (!made) {
          TransportError error = std::move(made).error();
          error.host_unreachable = true;
          co_return CheckoutFailure{std::move(error), true};
        }
        lease.attach(std::move(made).value());
        co_return std::move(lease);
      }
      if (fresh_only && !pool.idle.empty()) {
        // Full, but an idle connection can make room for the fresh one we need.
        Lease(&pool, std::move(pool.idle.front()), true).discard();
        pool.idle.erase(pool.idle.begin());
        continue;
      }
      auto waiter = std::make_shared<asio::steady_timer>(io, deadline);
      pool.waiters.push_back(waiter);
      error_code ec;
      co_await waiter->async_wait(asio::redirect_error(use_awaitable, ec));
      std::erase(pool.waiters, waiter);
      if (!ec)
        co_return CheckoutFailure{
            make_error(TransportErrorKind::timeout,
                       "no free connection to " + pool.endpoint.host + " before the deadline", pool, false),
            false};
    }
  }

  // Resolve, TCP connect and TLS handshake, each under min(connect_timeout, overall deadline).
  awaitable<Result<std::unique_ptr<Connection>, TransportError>> connect(HostPool& pool, Clock::time_point deadline) {
    auto phase_deadline = [&] { return std::min(Clock::now() + config.connect_timeout, deadline); };
    const HttpsEndpoint& ep = pool.endpoint;

    tcp::resolver resolver(io);
    asio::steady_timer resolve_timer(io, phase_deadline());
    // The resolver has no deadline of its own; the timer cancels it. The handler only touches
    // the resolver when the timer really fired (it is cancelled before `resolver` dies).
    resolve_timer.async_wait([&resolver](const error_code& ec) {
      if (!ec) resolver.cancel();
    });
    error_code ec;
    auto endpoints =
        co_await resolver.async_resolve(ep.host, std::to_string(ep.port), asio::redirect_error(use_awaitable, ec));
    const bool resolve_timed_out = resolve_timer.expiry() <= Clock::now();
    resolve_timer.cancel();
    if (ec) {
      if (resolve_timed_out)
        co_return make_error(TransportErrorKind::timeout, "resolving " + ep.host + " timed out", pool, false);
      co_return make_error(TransportErrorKind::resolve, "resolving " + ep.host + ": " + ec.message(), pool, false);
    }

    auto conn = std::make_unique<Connection>(io, tls);
    auto& tcp_stream = beast::get_lowest_layer(conn->stream);
    tcp_stream.expires_at(phase_deadline());
    if (!pool.source) {
      co_await tcp_stream.async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
    } else {
      // Bound to the pool's source address: each endpoint of its family in turn, on a socket
      // opened and bound anew (a failed connect leaves the socket unusable).
      ec = asio::error::address_family_not_supported;
      for (const auto& entry : endpoints) {
        const tcp::endpoint remote = entry.endpoint();
        if (remote.address().is_v4() != pool.source->is_v4()) continue;
        error_code ignored_close;
        tcp_stream.socket().close(ignored_close);
        tcp_stream.socket().open(remote.protocol(), ec);
        if (!ec) tcp_stream.socket().bind(tcp::endpoint(*pool.source, 0), ec);
        if (ec) break;  // checked at start-up; a source address removed from the host since
        co_await tcp_stream.async_connect(remote, asio::redirect_error(use_awaitable, ec));
        if (!ec || ec == beast::error::timeout) break;
      }
      if (ec && ec != beast::error::timeout)
        co_return make_error(TransportErrorKind::connect,
                             "connecting to " + ep.host + " from " + pool.source->to_string() + ": " + ec.message(),
                             pool, false);
    }
    if (ec == beast::error::timeout)
      co_return make_error(TransportErrorKind::timeout, "connecting to " + ep.host + " timed out", pool, false);
    if (ec)
      co_return make_error(TransportErrorKind::connect, "connecting to " + ep.host + ": " + ec.message(), pool, false);
    error_code ignored;
    tcp_stream.socket().set_option(tcp::no_delay(true), ignored);

    // Host-name verification: IP literals against IP SANs, names against DNS SANs + SNI.
    // SNI must not carry an IP address (RFC 6066), hence the split.
    SSL* handle = conn->stream.native_handle();
    if (pool.is_ip_literal) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), ep.host.c_str()) != 1)
        co_return make_error(TransportErrorKind::tls, "cannot set the expected IP address " + ep.host, pool, false);
    } else {
      if (SSL_ctrl(handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                   const_cast<char*>(ep.host.c_str())) != 1 ||
          SSL_set1_host(handle, ep.host.c_str()) != 1)
        co_return make_error(TransportErrorKind::tls, "cannot set the expected host name " + ep.host, pool, false);
    }
    Connection* raw = conn.get();  // the callback lives in conn's own stream
    conn->stream.set_verify_callback(
        [raw](bool preverified, ssl::verify_context& ctx) { return note_validity(*raw, preverified, ctx); });
    tcp_stream.expires_at(phase_deadline());
    co_await conn->stream.async_handshake(ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
    if (ec == beast::error::timeout)
      co_return make_error(TransportErrorKind::timeout, "TLS handshake with " + ep.host + " timed out", pool, false);
    if (ec) co_return make_error(TransportErrorKind::tls, ep.host + ": " + tls_failure_message(*conn, ec), pool, false);

    ++stats.connections_opened;
    co_return std::move(conn);
  }

  struct ExchangeFailure {
    TransportError error;
    bool retry_on_fresh;  // the request provably never reached the application (see below)
  };

  // Writes the request and reads the whole response on the leased connection.
  awaitable<Result<HttpResponse, ExchangeFailure>> exchange(HostPool& pool, Lease& lease,
                                                            const bhttp::request<bhttp::string_body>& req,
                                                            const std::function<void()>& on_write,
                                                            Clock::time_point deadline) {
    Connection& c = lease.conn();
    auto& tcp_stream = beast::get_lowest_layer(c.stream);
    tcp_stream.expires_at(std::min(Clock::now() + config.request_timeout, deadline));

    error_code ec;
    if (on_write) on_write();
    co_await bhttp::async_write(c.stream, req, asio::redirect_error(use_awaitable, ec));
    // Why retrying is safe in exactly these cases: on a REUSED connection, an EOF/reset while
    // writing, or before the first response byte, is what a server that closed the idle
    // connection just as we reused it looks like; such a server never hands the request to
    // the application. Even in the rare case it did, the POST sets a value (idempotent), so a
    // second delivery changes nothing. A fresh connection failing the same way is a real error,
    // and a failure after any response byte is never retried (the outcome is unknown).
    if (ec) {
      const auto kind = classify_exchange_error(ec);
      co_return ExchangeFailure{make_error(kind, "writing to " + pool.endpoint.host + ": " + ec.message(), pool, true),
                                lease.reused() && kind == TransportErrorKind::closed};
    }

    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(kMaxResponseHeaderBytes);
    parser.body_limit(config.max_response_bytes);
    // The header alone first: Beast 1.74 parsing eagerly (as async_read does) goes on after
    // refusing a Content-Length over body_limit and reserves that length for the body — a
    // response claiming exabytes threw std::bad_alloc out of io_context::run (found by the
    // http_response fuzz target). Read on its own, the header stops at the refusal.
    co_await bhttp::async_read_header(c.stream, c.buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (!ec) co_await bhttp::async_read(c.stream, c.buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      const auto kind = classify_exchange_error(ec);
      const bool nothing_received = !parser.got_some() && c.buffer.size() == 0;
      std::string what = kind == TransportErrorKind::too_large
                             ? "response from " + pool.endpoint.host + " exceeds " +
                                   std::to_string(config.max_response_bytes) + " bytes"
                             : "reading from " + pool.endpoint.host + ": " + ec.message();
      co_return ExchangeFailure{make_error(kind, std::move(what), pool, true),
                                lease.reused() && nothing_received && kind == TransportErrorKind::closed};
    }

    auto& res = parser.get();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    for (const auto& field : res)
      keep_response_header(out, std::string_view(field.name_string().data(), field.name_string().size()),
                           std::string_view(field.value().data(), field.value().size()));
    out.host = pool.endpoint.host;
    out.reused_connection = lease.reused();
    if (res.keep_alive() && c.buffer.size() == 0)
      lease.give_back();
    else
      lease.discard();
    co_return out;
  }

  awaitable<Result<HttpResponse, TransportError>> send(HttpRequest request) {
    const auto started = Clock::now();
    // Overall deadline: room for one connection set-up on each host plus one exchange. Every
    // phase is clipped to it, so no request outlives it whatever the failure.
    // (reconcile::request_deadline: the tenant lease's send margin is derived from it.)
    const auto deadline = started + reconcile::request_deadline(config);

    const bhttp::verb verb = bhttp::string_to_verb(request.method);
    if (verb == bhttp::verb::unknown || request.target.empty() || request.target.front() != '/' ||
        has_crlf(request.target) || has_crlf(request.authorization) ||
        (request.wechatpay_serial && has_crlf(*request.wechatpay_serial)))
      co_return TransportError{TransportErrorKind::config, "unusable request (method, target or header value)",
                               pools[0]->endpoint.host, false};

    std::optional<TransportError> connect_failure;
    const std::size_t first =
        (request.source < pools.size() / hosts_per_source ? request.source : 0) * hosts_per_source;
    for (std::size_t i = 0; i < hosts_per_source; ++i) {
      HostPool& pool = *pools[first + i];
      bhttp::request<bhttp::string_body> req{verb, request.target, 11};
      req.set(bhttp::field::host, pool.host_header);
      req.set(bhttp::field::user_agent, "callbackd/" CALLBACKD_VERSION);
      req.set(bhttp::field::accept, "application/json");
      req.set(bhttp::field::content_type, "application/json");
      if (!request.authorization.empty()) req.set(bhttp::field::authorization, request.authorization);
      if (request.wechatpay_serial) req.set("Wechatpay-Serial", *request.wechatpay_serial);
      req.body() = request.body;
      req.keep_alive(true);
      req.prepare_payload();

      auto lease = co_await checkout(pool, deadline, false);
      if (!lease) {
        // Failover only when no connection could be made: nothing was sent, so the backup
        // cannot apply the same request twice. Waiting for a pool slot is not a failure of
        // the host and does not fail over.
        if (lease.error().host_unreachable && i + 1 < hosts_per_source) {
          connect_failure = lease.error().error;
          ++stats.failovers;
          continue;
        }
        co_return std::move(lease).error().error;
      }
      auto result = co_await exchange(pool, lease.value(), req, request.on_write, deadline);
      bool retried = false;
      if (!result && result.error().retry_on_fresh) {
        ++stats.stale_retries;
        lease.value().discard();
        auto fresh = co_await checkout(pool, deadline, true);
        if (!fresh) co_return std::move(fresh).error().error;
        result = co_await exchange(pool, fresh.value(), req, request.on_write, deadline);
        retried = true;
      }
      if (!result) co_return std::move(result).error().error;
      HttpResponse out = std::move(result).value();
      out.used_backup = i > 0;
      out.retried_on_fresh = retried;
      out.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
      co_return out;
    }
    CALLBACKD_ASSERT(connect_failure.has_value());
    co_return *connect_failure;
  }
};

std::string_view to_string(TransportErrorKind kind) {
  switch (kind) {
    case TransportErrorKind::config:
      return "config";
    case TransportErrorKind::resolve:
      return "resolve";
    case TransportErrorKind::connect:
      return "connect";
    case TransportErrorKind::tls:
      return "tls";
    case TransportErrorKind::timeout:
      return "timeout";
    case TransportErrorKind::closed:
      return "closed";
    case TransportErrorKind::too_large:
      return "too_large";
    case TransportErrorKind::malformed:
      return "malformed";
    case TransportErrorKind::io:
      return "io";
  }
  return "io";
}

void keep_response_header(HttpResponse& response, std::string_view name, std::string_view value) {
  if (iequals(name, "Request-ID")) response.request_id = std::string(value);
  if (iequals(name, "Retry-After")) response.retry_after = std::string(value);
  if (istarts_with(name, "Wechatpay-")) response.wechatpay_headers.emplace_back(std::string(name), std::string(value));
}

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : wechatpay_headers)
    if (iequals(n, name)) return v;
  return std::nullopt;
}

wechatpay::ResponseHeaders response_headers(const HttpResponse& response) {
  wechatpay::ResponseHeaders h;
  h.timestamp = response.header(wechatpay::kHeaderTimestamp);
  h.nonce = response.header(wechatpay::kHeaderNonce);
  h.signature = response.header(wechatpay::kHeaderSignature);
  h.serial = response.header(wechatpay::kHeaderSerial);
  h.signature_type = response.header(wechatpay::kHeaderSignatureType);
  if (!response.request_id.empty()) h.request_id = response.request_id;
  h.retry_after = response.retry_after;
  return h;
}

HttpsClient::HttpsClient(asio::io_context& io, const WechatpayConfig& config)
    : impl_(std::make_shared<Impl>(io, config)) {
  std::vector<Problem> problems;
  auto add_pool = [&](const std::string& url, const char* key, const std::optional<asio::ip::address>& source) {
    auto ep = parse_https_url(url);
    if (!ep) {
      const std::string where = std::string("wechatpay.") + key;
      // Once, however many source addresses there are.
      if (std::none_of(problems.begin(), problems.end(), [&](const Problem& p) { return p.where == where; }))
        problems.push_back(
            {where, "'" + url + "' is not an https://host[:port] URL", "write it like https://api.mch.weixin.qq.com"});
      return;
    }
    auto pool = std::make_unique<HostPool>();
    error_code ec;
    asio::ip::make_address(ep->host, ec);
    pool->is_ip_literal = !ec;
    const bool v6 = pool->is_ip_literal && ep->host.find(':') != std::string::npos;
    const std::string host_part = v6 ? "[" + ep->host + "]" : ep->host;
    pool->host_header = ep->port == 443 ? host_part : host_part + ":" + std::to_string(ep->port);
    pool->endpoint = std::move(*ep);
    pool->source = source;
    impl_->pools.push_back(std::move(pool));
  };
  // The source addresses: each must be one this host can bind now (a typo, an address not
  // configured on any interface), so that the daemon does not start only to fail every request.
  std::vector<std::optional<asio::ip::address>> sources;
  for (std::size_t i = 0; i < config.source_addresses.size(); ++i) {
    const std::string& text = config.source_addresses[i];
    const std::string key = "wechatpay.source_addresses[" + std::to_string(i) + "]";
    error_code ec;
    const auto address = asio::ip::make_address(text, ec);
    if (!ec) {
      tcp::socket probe(io);
      probe.open(address.is_v4() ? tcp::v4() : tcp::v6(), ec);
      if (!ec) probe.bind(tcp::endpoint(address, 0), ec);
    }
    if (ec) {
      problems.push_back({key, "cannot bind source address " + text + ": " + ec.message(),
                          "list only addresses of this host's interfaces (ip -brief address), or remove it"});
      continue;
    }
    sources.push_back(address);
  }
  if (config.source_addresses.empty()) sources.emplace_back(std::nullopt);
  impl_->hosts_per_source = config.backup_url.empty() ? 1 : 2;
  for (const auto& source : sources) {
    add_pool(config.base_url, "base_url", source);
    if (!config.backup_url.empty()) add_pool(config.backup_url, "backup_url", source);
  }

  auto& tls = impl_->tls;
  // Verification is always on; the only knob is which CAs are trusted in addition.
  tls.set_verify_mode(ssl::verify_peer);
  SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
  error_code ec;
  tls.set_default_verify_paths(ec);
  if (ec) problems.push_back({"system CA store", ec.message(), "install ca-certificates"});
  if (config.ca_file) {
    // OpenSSL reports a missing or unreadable file only as "asio.ssl error": open it first so
    // that the operator reads the cause.
    if (FILE* f = std::fopen(config.ca_file->c_str(), "r")) {
      std::fclose(f);
      tls.load_verify_file(*config.ca_file, ec);
    } else {
      ec = error_code(errno, boost::system::generic_category());
    }
    if (ec)
      problems.push_back({"wechatpay.ca_file", "cannot load CA bundle '" + *config.ca_file + "': " + ec.message(),
                          "point it to a readable PEM file of CA certificates"});
  }
  if (!problems.empty()) throw StartupError(std::move(problems));
}

HttpsClient::~HttpsClient() { close_idle(); }

awaitable<Result<HttpResponse, TransportError>> HttpsClient::send(HttpRequest request) {
  std::shared_ptr<Impl> impl = impl_;  // keeps the pools alive even if the client goes away meanwhile
  try {
    co_return co_await impl->send(std::move(request));
  } catch (const std::exception& e) {
    // Not expected (allocation failure, a Beast invariant); still a value, never a crash.
    co_return TransportError{TransportErrorKind::io, std::string("internal error: ") + e.what(),
                             impl->pools[0]->endpoint.host, true};
  }
}

std::vector<std::string> HttpsClient::reconfigure(const WechatpayConfig& config) {
  WechatpayConfig& current = impl_->config;
  std::vector<std::string> need_restart;
  if (config.base_url != current.base_url) need_restart.push_back("wechatpay.base_url");
  if (config.backup_url != current.backup_url) need_restart.push_back("wechatpay.backup_url");
  if (config.ca_file != current.ca_file) need_restart.push_back("wechatpay.ca_file");
  if (config.source_addresses != current.source_addresses) need_restart.push_back("wechatpay.source_addresses");
  if (config.egress_rate_per_minute != current.egress_rate_per_minute)
    need_restart.push_back("wechatpay.egress_rate_per_minute");
  // Every phase reads these from `config` when it starts (send(), checkout(), connect(),
  // exchange()); a phase of a request in flight is still clipped to that request's deadline.
  current.connect_timeout = config.connect_timeout;
  current.request_timeout = config.request_timeout;
  current.idle_timeout = config.idle_timeout;
  current.max_response_bytes = config.max_response_bytes;
  current.max_connections_per_host = config.max_connections_per_host;
  return need_restart;
}

void HttpsClient::close_idle() {
  for (auto& pool : impl_->pools) {
    while (!pool->idle.empty()) {
      Lease(pool.get(), std::move(pool->idle.back()), true).discard();
      pool->idle.pop_back();
    }
  }
}

ClientStats HttpsClient::stats() const { return impl_->stats; }

Result<HttpResponse, TransportError> send_blocking(const WechatpayConfig& config, HttpRequest request) {
  asio::io_context io;
  HttpsClient client(io, config);
  std::optional<Result<HttpResponse, TransportError>> out;
  asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await client.send(std::move(request))); }, asio::detached);
  io.run();
  CALLBACKD_ASSERT(out.has_value());
  return std::move(*out);
}

}  // namespace callbackd::http
