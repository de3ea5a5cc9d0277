// The daemon as systemd runs it: NOTIFY_SOCKET (a socket this test binds), WATCHDOG_USEC and
// CREDENTIALS_DIRECTORY set, credentials_dir left out of the YAML. Checks the notifications
// arrive in order (READY only after the tenants' keys loaded; RELOADING + MONOTONIC_USEC then
// READY around SIGHUP; STOPPING on SIGTERM), that watchdog pings keep coming, that the keys
// are read from $CREDENTIALS_DIRECTORY, and that /metrics, /healthz, /readyz answer (the
// metrics are parsed by the Prometheus client's parser), with JSON log lines.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "e2e/e2e_support.h"

using namespace e2e;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// The socket systemd would listen on.
struct NotifySocket {
  int fd = -1;
  std::string path;
  explicit NotifySocket(const std::string& dir) : path(dir + "/notify") {
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.data(), path.size());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~NotifySocket() { close(fd); }
  std::vector<std::string> received;  // every datagram, in order
  // Receives until a datagram contains `needle` (returns its index) or `limit` passes (-1).
  int wait_for(const std::string& needle, std::chrono::seconds limit) {
    for (std::size_t i = scanned; i < received.size(); ++i)
      if (received[i].find(needle) != std::string::npos) return static_cast<int>(scanned = i + 1) - 1;
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) != 1) continue;
      char buf[4096];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) continue;
      received.emplace_back(buf, static_cast<std::size_t>(n));
      if (received.back().find(needle) != std::string::npos) {
        scanned = received.size();
        return static_cast<int>(received.size()) - 1;
      }
    }
    return -1;
  }
  std::size_t scanned = 0;  // wait_for looks only at datagrams after the last match
  int count(const std::string& needle, std::size_t from = 0) const {
    int n = 0;
    for (std::size_t i = from; i < received.size(); ++i) n += received[i].find(needle) != std::string::npos;
    return n;
  }
};

// One request over plain HTTP/1.0: (status, body); status 0 when nothing answered.
std::pair<int, std::string> http_raw(int port, const std::string& req) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return {0, ""};
  }
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return {0, ""};
  }
  std::string response;
  char buf[8192];
  for (int i = 0; i < 10'000; ++i) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return {0, response};
  const auto body = response.find("\r\n\r\n");
  return {std::stoi(response.substr(9, 3)), body == std::string::npos ? "" : response.substr(body + 4)};
}

std::pair<int, std::string> http_get(int port, const std::string& target) {
  return http_raw(port, "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
}

void copy_private(const std::string& from, const std::string& to) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
}

}  // namespace

TEST_CASE("under systemd: notify in order, watchdog, credentials, metrics and health, JSON logs", "[e2e][systemd]") {
  Environment env;
  // The key lives only in the credentials directory, under a name the fixture does not use.
  const std::string credentials = env.work_dir() + "/credentials";
  copy_private(env.keys_dir() + "/merchant_1900000001.key", credentials + "/acme/apiclient_key.pem");
  copy_private(env.keys_dir() + "/platform_public.pem", credentials + "/platform_public.pem");
  TenantSpec t("acme");
  t.private_key_path = "acme/apiclient_key.pem";
  env.add_tenant(t);
  env.add_rows("acme", 1, 50);
  env.start_sandbox();

  NotifySocket notify(env.work_dir());
  const int port = free_port();
  const std::string config = env.write_daemon_config(
      "log:\n  format: json\n", DaemonConfigOptions{false, "127.0.0.1:" + std::to_string(port), "", ""});
  auto child = callbackd::test::spawn_process({CALLBACKD_BINARY, "--config", config, "run"},
                                              {{"NOTIFY_SOCKET", notify.path},
                                               {"WATCHDOG_USEC", "1000000"},
                                               {"CREDENTIALS_DIRECTORY", credentials},
                                               {"JOURNAL_STREAM", ""}});
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid <= 0) return;  // already reaped (and never kill(-1, ...): that is every process)
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reaper{child.pid};
  auto output = [&] { return callbackd::test::read_file(child.output_path); };

  // READY=1 once the tenants and their keys were loaded, with a STATUS line.
  const int ready = notify.wait_for("READY=1", std::chrono::seconds{60});
  INFO(output());
  REQUIRE(ready >= 0);
  CHECK(notify.received[static_cast<std::size_t>(ready)].find("STATUS=1 tenants") != std::string::npos);
  CHECK(notify.count("STOPPING=1") == 0);

  // Every row is applied: the key was read from $CREDENTIALS_DIRECTORY.
  for (int i = 0; i < 600 && env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'") < 50; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'") == 50);

  // Watchdog pings keep coming from the event loop (every 0.5 s for WATCHDOG_USEC = 1 s).
  const std::size_t before = notify.received.size();
  const auto until = Clock::now() + std::chrono::seconds{3};
  while (Clock::now() < until) notify.wait_for("no such message", std::chrono::seconds{1});
  CHECK(notify.count("WATCHDOG=1", before) >= 2);

  // Health, readiness and metrics (the queue query runs every 10 s: wait for readiness).
  CHECK(http_get(port, "/healthz").first == 200);
  int ready_status = 0;
  for (int i = 0; i < 150 && (ready_status = http_get(port, "/readyz").first) != 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  CHECK(ready_status == 200);
  CHECK(http_get(port, "/nothing").first == 404);
  // Bounded requests: oversized headers are refused, only GET is served.
  CHECK(http_raw(port, "GET /metrics HTTP/1.0\r\nX-Big: " + std::string(20'000, 'a') + "\r\n\r\n").first == 413);
  CHECK(http_raw(port, "POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi").first == 405);
  const auto metrics = http_get(port, "/metrics");
  CHECK(metrics.first == 200);
  CHECK(metrics.second.find("callbackd_build_info{version=\"") != std::string::npos);
  const auto parsed = callbackd::test::run_process(
      {CALLBACKD_PYTHON3, CALLBACKD_SOURCE_DIR "/tests/e2e/check-metrics",
       "http://127.0.0.1:" + std::to_string(port) + "/metrics", "--dashboard",
       CALLBACKD_SOURCE_DIR "/docs/grafana/callbackd.json", "callbackd_requests_total:tenant=acme,outcome=applied:50",
       "callbackd_request_duration_seconds_count:tenant=acme:50", "callbackd_tenants::1", "callbackd_ready::1",
       "callbackd_tenant_rate_per_minute:tenant=acme:1"});
  INFO(parsed.output);
  CHECK(parsed.exit_status == 0);

  // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1.
  kill(child.pid, SIGHUP);
  const int reloading = notify.wait_for("RELOADING=1", std::chrono::seconds{30});
  REQUIRE(reloading > ready);
  CHECK(notify.received[static_cast<std::size_t>(reloading)].find("\nMONOTONIC_USEC=") != std::string::npos);
  const int ready_again = notify.wait_for("READY=1", std::chrono::seconds{30});
  CHECK(ready_again > reloading);

  // SIGTERM: STOPPING=1, then a clean exit.
  kill(child.pid, SIGTERM);
  const int stopping = notify.wait_for("STOPPING=1", std::chrono::seconds{30});
  CHECK(stopping > ready_again);
  const int status = callbackd::test::wait_exit_status(child);
  reaper.pid = -1;
  CHECK(status == 0);

  // Every log line is one JSON object; the ready event is among them.
  const std::string log = output();
  std::istringstream lines(log);
  int json_lines = 0;
  bool saw_ready = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    INFO(line);
    nlohmann::json j;
    REQUIRE_NOTHROW(j = nlohmann::json::parse(line));
    ++json_lines;
    saw_ready = saw_ready || j.value("event", "") == "ready";
    CHECK(j.contains("level"));
  }
  CHECK(json_lines > 3);
  CHECK(saw_ready);
}

TEST_CASE("READY=1 is not sent when the database schema is missing: start-up fails", "[e2e][systemd]") {
  Environment env;
  env.exec("DROP SCHEMA callbackd CASCADE");
  env.start_sandbox();
  NotifySocket notify(env.work_dir());
  const std::string config = env.write_daemon_config();
  auto run =
      callbackd::test::run_process({CALLBACKD_BINARY, "--config", config, "run"}, {{"NOTIFY_SOCKET", notify.path}});
  INFO(run.output);
  CHECK(run.exit_status == 78);
  CHECK(notify.wait_for("READY=1", std::chrono::seconds{1}) == -1);
}
