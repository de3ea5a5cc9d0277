// The systemd notify protocol without libsystemd: one datagram to $NOTIFY_SOCKET (a path, or
// an abstract socket when it starts with '@'). Nothing here throws; without NOTIFY_SOCKET
// (not under systemd, or Type= is not notify) every call is a no-op that returns false.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd::app {

// Sends `state` ("READY=1", "STATUS=...", several lines joined by '\n') to `socket`.
// Returns false when the socket name is empty or invalid, or sending failed.
bool notify_socket_send(const std::string& socket, std::string_view state);

// The same, to $NOTIFY_SOCKET.
bool sd_notify(std::string_view state);

// "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC now in µs>", what systemd expects on SIGHUP.
std::string reloading_message();

// $WATCHDOG_USEC when it is meant for this process ($WATCHDOG_PID unset or our pid);
// nullopt otherwise. The caller pings with WATCHDOG=1 at half of it.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace callbackd::app
