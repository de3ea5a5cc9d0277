#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include "app/metrics_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <map>

#include "core/error.h"
#include "core/metrics/admission.h"
#include "core/status/page.h"

namespace callbackd::app {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {
// Descriptors are bounded by kMaxConnections; a health check still gets in when they are all
// held idle (core/metrics/admission.h: the longest-waiting connection makes room).
constexpr std::size_t kMaxConnections = 32;
constexpr std::size_t kMaxConnectionsPerAddress = 8;
constexpr std::size_t kHeaderLimit = 8 * 1024;
constexpr std::size_t kBodyLimit = 1024;
constexpr auto kReadDeadline = std::chrono::seconds{10};
constexpr auto kWriteDeadline = std::chrono::seconds{10};
constexpr int kMaxRequestsPerConnection = 100;
}  // namespace

struct MetricsServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, MetricsHandlers h) : acceptor(io), handlers(std::move(h)) {}
  tcp::acceptor acceptor;
  MetricsHandlers handlers;
  metrics::ConnectionAdmission admission{kMaxConnections, kMaxConnectionsPerAddress};
  metrics::ConnectionAdmission::Id next_id = 0;
  std::map<metrics::ConnectionAdmission::Id, beast::tcp_stream*> streams;  // to close one that makes room

  asio::awaitable<bhttp::response<bhttp::string_body>> respond(const bhttp::request<bhttp::string_body>& req) {
    bhttp::response<bhttp::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(bhttp::field::server, "callbackd");
    res.set(bhttp::field::cache_control, "no-store");
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    auto text = [&](bhttp::status status, std::string body) {
      res.result(status);
      res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res.body() = std::move(body);
    };
    if (req.method() != bhttp::verb::get) {
      // Read-only: the status page's one form uses GET too.
      text(bhttp::status::method_not_allowed, "GET only\n");
      res.set(bhttp::field::allow, "GET");
    } else if (path == "/metrics") {
      res.result(bhttp::status::ok);
      res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = handlers.metrics();
    } else if (path == "/healthz" || path == "/readyz") {
      const Probe p = path == "/healthz" ? handlers.health() : handlers.ready();
      text(p.ok ? bhttp::status::ok : bhttp::status::service_unavailable,
           (p.ok ? "ok: " : "not ok: ") + p.detail + "\n");
    } else if (handlers.page) {
      HtmlPage page = co_await handlers.page(target);
      res.result(static_cast<bhttp::status>(page.status));
      res.set(bhttp::field::content_type, "text/html; charset=utf-8");
      // The page's own stylesheet only, by hash (core/status/page.h): no script, no
      // external asset, no framing; the browser refuses anything else.
      res.set("Content-Security-Policy", status::content_security_policy());
      res.set("X-Content-Type-Options", "nosniff");
      res.set("Referrer-Policy", "no-referrer");
      res.set("X-Frame-Options", "DENY");
      res.body() = std::move(page.body);
    } else {
      text(bhttp::status::not_found, "not found: try /metrics, /healthz or /readyz\n");
    }
    res.prepare_payload();
    co_return res;
  }

  asio::awaitable<void> serve(tcp::socket socket, metrics::ConnectionAdmission::Id id) {
    auto self = shared_from_this();
    beast::tcp_stream stream(std::move(socket));
    streams[id] = &stream;
    struct Forget {
      Impl& impl;
      metrics::ConnectionAdmission::Id id;
      ~Forget() {
        impl.streams.erase(id);
        impl.admission.closed(id);
      }
    } forget{*this, id};
    beast::flat_buffer buffer(kHeaderLimit + kBodyLimit);
    boost::system::error_code ec;
    for (int i = 0; i < kMaxRequestsPerConnection; ++i) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(kBodyLimit);
      admission.waiting(id);
      stream.expires_after(kReadDeadline);
      co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      admission.busy(id);
      if (ec) {
        if (ec == bhttp::error::header_limit || ec == bhttp::error::body_limit) {
          bhttp::response<bhttp::string_body> res{bhttp::status::payload_too_large, 11};
          res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
          res.body() = "request too large\n";
          res.keep_alive(false);
          res.prepare_payload();
          stream.expires_after(kWriteDeadline);
          co_await bhttp::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
        }
        break;
      }
      auto res = co_await respond(parser.get());
      stream.expires_after(kWriteDeadline);
      co_await bhttp::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
      if (ec || !res.keep_alive()) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
      if (ec) continue;  // e.g. too many open files: try the next one
      const auto peer = socket.remote_endpoint(ec);
      if (ec) continue;  // already gone
      const auto id = next_id++;
      const auto decision = admission.admit(id, peer.address().to_string());
      if (decision.evict) {
        // Closed now, so its descriptor is free at once; its coroutine ends on the aborted read.
        if (auto it = streams.find(*decision.evict); it != streams.end()) it->second->socket().close(ec);
      }
      if (!decision.accept) {
        socket.close(ec);  // every connection is busy answering: bounded, descriptors are not exhausted
        continue;
      }
      asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), id), asio::detached);
    }
  }
};

MetricsServer::MetricsServer(asio::io_context& io, const std::string& listen, MetricsHandlers handlers)
    : impl_(std::make_shared<Impl>(io, std::move(handlers))) {
  const auto colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    tcp::resolver resolver(io);
    const auto results = resolver.resolve(host, port, tcp::resolver::numeric_service);
    if (results.empty()) throw boost::system::system_error(asio::error::host_not_found);
    const tcp::endpoint endpoint = results.begin()->endpoint();
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl_->acceptor.bind(endpoint);
    impl_->acceptor.listen(64);
  } catch (const boost::system::system_error& e) {
    throw StartupError(Problem{"metrics.listen", "cannot listen on " + listen + ": " + e.code().message(),
                               "choose a free address and port, or \"\" to turn the metrics server off"});
  }
  asio::co_spawn(io, impl_->accept_loop(), asio::detached);
}

MetricsServer::~MetricsServer() { close(); }

void MetricsServer::close() {
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
}

std::string MetricsServer::local_address() const {
  boost::system::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  if (ec) return "";
  const std::string addr = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + addr + "]" : addr) + ":" + std::to_string(ep.port());
}

}  // namespace callbackd::app
