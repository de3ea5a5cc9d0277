// The notify protocol against a real AF_UNIX datagram socket, as systemd listens.
#include <catch2/catch.hpp>

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "app/sd_notify.h"

using namespace callbackd::app;

namespace {

struct Listener {
  int fd = -1;
  std::string name;  // as NOTIFY_SOCKET spells it
  explicit Listener(bool abstract) {
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (abstract) {
      name = "@callbackd-test-" + std::to_string(getpid());
      std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
    } else {
      char dir[] = "/tmp/callbackd-notify.XXXXXX";
      REQUIRE(mkdtemp(dir) != nullptr);
      name = std::string(dir) + "/notify";
      std::memcpy(addr.sun_path, name.data(), name.size());
    }
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())) == 0);
  }
  ~Listener() {
    close(fd);
    if (name[0] == '/') std::filesystem::remove_all(std::filesystem::path(name).parent_path());
  }
  std::string receive() {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return "<nothing within 5 s>";
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    return n < 0 ? "<error>" : std::string(buf, static_cast<std::size_t>(n));
  }
};

}  // namespace

TEST_CASE("notify datagrams reach a path socket and an abstract one", "[sd_notify]") {
  for (bool abstract : {false, true}) {
    Listener l(abstract);
    INFO(l.name);
    CHECK(notify_socket_send(l.name, "READY=1\nSTATUS=3 tenants"));
    CHECK(l.receive() == "READY=1\nSTATUS=3 tenants");
    setenv("NOTIFY_SOCKET", l.name.c_str(), 1);
    CHECK(sd_notify("WATCHDOG=1"));
    CHECK(l.receive() == "WATCHDOG=1");
    unsetenv("NOTIFY_SOCKET");
  }
}

TEST_CASE("without a usable NOTIFY_SOCKET nothing is sent and nothing fails", "[sd_notify]") {
  unsetenv("NOTIFY_SOCKET");
  CHECK_FALSE(sd_notify("READY=1"));
  CHECK_FALSE(notify_socket_send("", "READY=1"));
  CHECK_FALSE(notify_socket_send("relative/path", "READY=1"));
  CHECK_FALSE(notify_socket_send("/nonexistent/dir/notify", "READY=1"));
  CHECK_FALSE(notify_socket_send("/" + std::string(200, 'x'), "READY=1"));
}

TEST_CASE("RELOADING carries the monotonic clock in microseconds", "[sd_notify]") {
  const std::string m = reloading_message();
  REQUIRE(m.starts_with("RELOADING=1\nMONOTONIC_USEC="));
  const long long usec = std::stoll(m.substr(std::strlen("RELOADING=1\nMONOTONIC_USEC=")));
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const long long now = static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1'000;
  CHECK(usec <= now);
  CHECK(now - usec < 10'000'000);
}

TEST_CASE("the watchdog interval is read only when meant for this process", "[sd_notify]") {
  unsetenv("WATCHDOG_PID");
  setenv("WATCHDOG_USEC", "3000000", 1);
  CHECK(watchdog_interval() == std::chrono::microseconds{3'000'000});
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  CHECK(watchdog_interval() == std::chrono::microseconds{3'000'000});
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  CHECK_FALSE(watchdog_interval());
  unsetenv("WATCHDOG_PID");
  setenv("WATCHDOG_USEC", "junk", 1);
  CHECK_FALSE(watchdog_interval());
  unsetenv("WATCHDOG_USEC");
  CHECK_FALSE(watchdog_interval());
}
