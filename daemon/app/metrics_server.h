// The operations HTTP endpoint (metrics.listen, loopback by default): GET /metrics (Prometheus
// text format), /healthz, /readyz. Plain HTTP on the daemon's io_context, so a hung event loop
// also stops answering. Bounded: requests over 8 KiB of headers or with a body over 1 KiB are
// refused, every read and write has a deadline (10 s), at most 32 connections at once and 8
// per client address. Idle connections cannot starve /healthz: when a limit is reached, the
// connection that has waited longest for a request is closed to make room for the new one
// (core/metrics/admission.h, docs/operations.md).
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

namespace callbackd::app {

struct Probe {
  bool ok = false;
  std::string detail;  // one line for the response body
};

struct MetricsHandlers {
  std::function<std::string()> metrics;  // the exposition text
  std::function<Probe()> health;         // /healthz: 200 when ok, else 503
  std::function<Probe()> ready;          // /readyz: 200 when ok, else 503
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
