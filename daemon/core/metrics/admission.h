// Which connections the operations endpoint (/metrics, /healthz, /readyz) keeps. Pure: no
// sockets, no clock; the server (app/metrics_server.cpp) asks it on every accept and tells it
// when a connection starts answering a request, waits for the next one, or closes.
//
// The endpoint must answer a health check even while something (a leaking scraper, a port
// scan, a slowloris) holds idle connections open: otherwise systemd/Kubernetes restart a
// healthy daemon. So, instead of refusing a newcomer when full, the connection that has been
// waiting longest for a request is dropped to make room, and a single client address may hold
// only `per_address` connections (at its limit, its own oldest waiting connection makes room,
// so one address cannot push out the others). A connection busy answering a request is never
// dropped; only when every connection is busy is a newcomer refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace callbackd::metrics {

class ConnectionAdmission {
 public:
  using Id = std::uint64_t;
  ConnectionAdmission(std::size_t total, std::size_t per_address) : total_(total), per_address_(per_address) {}

  struct Decision {
    bool accept = false;
    std::optional<Id> evict;  // close this one first (no longer counted from now on)
  };
  // A new connection from `address`. When accepted it counts as waiting for its first request.
  Decision admit(Id id, const std::string& address);
  // The connection is answering a request (not evictable) / waiting for the next one again.
  void busy(Id id);
  void waiting(Id id);
  // Gone, for whatever reason (no-op for one already evicted).
  void closed(Id id);

  std::size_t open() const { return connections_.size(); }
  std::size_t open_from(const std::string& address) const;

 private:
  struct Connection {
    std::string address;
    std::optional<std::uint64_t> waiting_since;  // order of the wait's start; nullopt while busy
  };
  // The connection (of `address`, or of any when nullopt) that has been waiting longest.
  std::optional<Id> longest_waiting(const std::optional<std::string>& address) const;

  std::size_t total_;
  std::size_t per_address_;
  std::uint64_t sequence_ = 0;
  std::map<Id, Connection> connections_;
};

}  // namespace callbackd::metrics
