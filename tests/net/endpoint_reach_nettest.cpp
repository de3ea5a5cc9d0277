// TransportError::host_unreachable, which holds sending endpoint-wide (core/reconcile/
// endpoint_hold.h): set exactly when no connection could be made, never for what happens on
// a connection once made, nor for a wait for a pool slot.
#include <catch2/catch.hpp>

#include <boost/asio/ip/tcp.hpp>

#include "net/net_support.h"

using namespace nettest;
using callbackd::http::TransportErrorKind;
namespace asio = boost::asio;

namespace {
sandbox::FaultRule fault(sandbox::FaultKind kind, std::size_t size_bytes = 0) {
  sandbox::FaultRule r;
  r.kind = kind;
  r.size_bytes = size_bytes;
  return r;
}
}  // namespace

TEST_CASE("unreachable: connection refused, TLS refused, a connect deadline", "[net][client][reach]") {
  std::uint16_t closed_port = 0;
  {
    Sandbox gone;
    closed_port = gone.port();
  }
  auto refused = http::send_blocking(client_config(closed_port), signed_post(tenant(), "1", "https://a"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind == TransportErrorKind::connect);
  CHECK(refused.error().host_unreachable);
  CHECK_FALSE(refused.error().request_sent);

  Sandbox sb;
  auto untrusted = client_config(sb.port());
  untrusted.ca_file = keys_dir("untrusted") + "/ca.pem";
  auto tls = http::send_blocking(untrusted, signed_post(tenant(), "1", "https://a"));
  REQUIRE_FALSE(tls);
  CHECK(tls.error().kind == TransportErrorKind::tls);
  CHECK(tls.error().host_unreachable);

  // A listener that never accepts: the TLS handshake times out.
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto cfg = client_config(silent.local_endpoint().port());
  cfg.connect_timeout = std::chrono::milliseconds(200);
  auto stalled = http::send_blocking(cfg, signed_post(tenant(), "1", "https://a"));
  REQUIRE_FALSE(stalled);
  CHECK(stalled.error().kind == TransportErrorKind::timeout);
  CHECK(stalled.error().host_unreachable);
}

TEST_CASE("reached: a read timeout, an oversized body, any HTTP status", "[net][client][reach]") {
  auto cfg = sandbox_config();
  cfg.faults.by_sub_merchant["1900007001"] = fault(sandbox::FaultKind::timeout);
  cfg.faults.by_sub_merchant["1900007002"] = fault(sandbox::FaultKind::oversized_body, 200'000);
  auto unavailable = fault(sandbox::FaultKind::error);
  unavailable.code = "SYSTEM_ERROR";
  unavailable.status = 503;
  cfg.faults.by_sub_merchant["1900007003"] = unavailable;
  Sandbox sb(cfg);

  auto ccfg = client_config(sb.port());
  ccfg.request_timeout = std::chrono::milliseconds(300);
  auto silent = http::send_blocking(ccfg, signed_post(tenant(), "1900007001", "https://a"));
  REQUIRE_FALSE(silent);
  CHECK(silent.error().kind == TransportErrorKind::timeout);
  CHECK(silent.error().request_sent);
  CHECK_FALSE(silent.error().host_unreachable);

  auto huge = send(sb.port(), signed_post(tenant(), "1900007002", "https://a"));
  REQUIRE_FALSE(huge);
  CHECK(huge.error().kind == TransportErrorKind::too_large);
  CHECK_FALSE(huge.error().host_unreachable);

  auto answered = send(sb.port(), signed_post(tenant(), "1900007003", "https://a"));
  REQUIRE(answered);
  CHECK(answered->status == 503);
}
