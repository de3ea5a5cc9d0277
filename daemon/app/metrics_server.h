// The operations HTTP endpoint (metrics.listen, loopback by default): GET /metrics (Prometheus
// text format), /healthz, /readyz, and every other path to the status page (`page`, HTML;
// core/status/page.h). Plain HTTP on the daemon's io_context, so a hung event loop
// also stops answering. Bounded: requests over 8 KiB of headers or with a body over 1 KiB are
// refused, every read and write has a deadline (10 s), at most 32 connections at once and 8
// per client address. Idle connections cannot starve /healthz: when a limit is reached, the
// connection that has waited longest for a request is closed to make room for the new one
// (core/metrics/admission.h, docs/operations.md).
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

namespace callbackd::app {

struct Probe {
  bool ok = false;
  std::string detail;  // one line for the response body
};

// An HTML page of the status page: the status code and the document.
struct HtmlPage {
  int status = 200;
  std::string body;
};

struct MetricsHandlers {
  std::function<std::string()> metrics;  // the exposition text
  std::function<Probe()> health;         // /healthz: 200 when ok, else 503
  std::function<Probe()> ready;          // /readyz: 200 when ok, else 503
  // Any other GET target (path and query): the status page. It may wait for the database
  // thread, so it is a coroutine on the server's io_context. Unset: 404 for everything else.
  std::function<boost::asio::awaitable<HtmlPage>(std::string target)> page;
};

class MetricsServer {
 public:
  // Binds `listen` ("HOST:PORT" or "[V6]:PORT"; port 0 picks a free one) and starts serving.
  // Throws StartupError naming metrics.listen when the address cannot be bound.
  MetricsServer(boost::asio::io_context& io, const std::string& listen, MetricsHandlers handlers);
  ~MetricsServer();  // closes the acceptor; connections end at their next deadline
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound address, e.g. "127.0.0.1:9464" (with the port chosen when 0 was asked).
  std::string local_address() const;
  void close();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace callbackd::app
