// /healthz under idle sockets (issue 13, item 14): the operations endpoint on a real loopback
// socket, with more idle connections held open than it has room for. Before the fix the 33rd
// connection (the health check) was closed unanswered until an idle one's 10 s deadline.
#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "app/metrics_server.h"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// The operations endpoint on its own io_context thread, like the daemon's.
struct Endpoint {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::unique_ptr<callbackd::app::MetricsServer> server;
  std::thread thread;
  int port = 0;

  Endpoint() {
    server = std::make_unique<callbackd::app::MetricsServer>(
        io, "127.0.0.1:0",
        callbackd::app::MetricsHandlers{[] { return std::string("# no metrics\n"); },
                                        [] {
                                          return callbackd::app::Probe{true, "loop alive"};
                                        },
                                        [] {
                                          return callbackd::app::Probe{true, "ready"};
                                        },
                                        // The status page's place: whatever else is asked.
                                        [](std::string target) -> boost::asio::awaitable<callbackd::app::HtmlPage> {
                                          co_return callbackd::app::HtmlPage{200, "<p>page for " + target + "</p>"};
                                        }});
    const std::string address = server->local_address();
    port = std::stoi(address.substr(address.rfind(':') + 1));
    thread = std::thread([this] { io.run(); });
  }
  ~Endpoint() {
    io.stop();
    thread.join();
    server.reset();  // the connections' coroutines go with the io_context
  }
};

// A TCP connection to 127.0.0.1:port from `source` (a loopback address), or -1.
int connect_from(const char* source, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, source, &local.sin_addr) == 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Whether the server has closed this connection (EOF or reset), waiting at most `wait`.
bool closed_by_server(int fd, std::chrono::milliseconds wait) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

// GET `path` on a fresh connection; the whole response, or "" when the server closed it or
// did not answer within `limit`.
std::string get(int port, const std::string& path, std::chrono::milliseconds limit) {
  const int fd = connect_from("127.0.0.1", port);
  if (fd < 0) return "";
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "";
  }
  std::string response;
  const auto deadline = Clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return response;
}

}  // namespace

TEST_CASE("/healthz answers while more idle connections are held than the endpoint has room for",
          "[net][metrics][healthz]") {
  Endpoint endpoint;
  // Another client address holds a few idle connections too: the flood must not push them out.
  std::vector<int> other;
  for (int i = 0; i < 3; ++i) other.push_back(connect_from("127.0.0.2", endpoint.port));
  for (int fd : other) REQUIRE(fd >= 0);
  // 40 idle connections from loopback, each holding the 10 s request deadline: more than the
  // 32 the endpoint keeps at once.
  std::vector<int> idle;
  const auto opened = Clock::now();
  for (int i = 0; i < 40; ++i) {
    const int fd = connect_from("127.0.0.1", endpoint.port);
    REQUIRE(fd >= 0);
    idle.push_back(fd);
  }
  std::this_thread::sleep_for(300ms);  // every one accepted (or refused) by now

  // The health check is answered at once, not after an idle connection's deadline.
  const auto asked = Clock::now();
  const std::string health = get(endpoint.port, "/healthz", 3s);
  INFO(health);
  CHECK(health.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(health.find("ok: loop alive") != std::string::npos);
  CHECK(Clock::now() - asked < 2s);
  CHECK(get(endpoint.port, "/readyz", 3s).starts_with("HTTP/1.1 200 OK\r\n"));

  // Bounded per address: at most 8 of loopback's idle connections are still held; the other
  // address kept all of its own.
  std::size_t held = 0;
  for (int fd : idle) held += !closed_by_server(fd, 0ms);
  INFO("idle loopback connections still held: " << held);
  CHECK(held <= 8);
  for (int fd : other) CHECK_FALSE(closed_by_server(fd, 0ms));

  // The ones held are closed at their 10 s deadline (with margin for a loaded machine), not
  // kept forever.
  for (int fd : idle)
    CHECK(
        closed_by_server(fd, std::chrono::duration_cast<std::chrono::milliseconds>(opened + 16s - Clock::now() + 1ms)));
  for (int fd : other) CHECK(closed_by_server(fd, 2s));
  CHECK(Clock::now() - opened >= 9s);  // the survivors were held until their deadline
  for (int fd : idle) ::close(fd);
  for (int fd : other) ::close(fd);
}

TEST_CASE("every other GET goes to the status page, served as HTML under the Content-Security-Policy",
          "[net][metrics][status-page]") {
  Endpoint endpoint;
  const std::string page = get(endpoint.port, "/tenants/acme?x=1", 5s);
  INFO(page);
  CHECK(page.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(page.find("Content-Type: text/html; charset=utf-8\r\n") != std::string::npos);
  CHECK(page.find("Content-Security-Policy: default-src 'none'; style-src 'sha256-") != std::string::npos);
  CHECK(page.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
  CHECK(page.find("<p>page for /tenants/acme?x=1</p>") != std::string::npos);
  // The endpoints of their own stay what they were.
  const std::string metrics = get(endpoint.port, "/metrics", 5s);
  CHECK(metrics.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(metrics.find("Content-Security-Policy") == std::string::npos);
}
