// The LISTEN connection (listener.cpp). Std types only.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace callbackd::pg {

// LISTEN callbackd_desired and callbackd_tenants on a connection of its own, waited on by a
// thread of its own, so that a wake-up never queues behind a claim or a batch write.
class Listener {
 public:
  struct Notification {
    std::string channel;    // "callbackd_desired" or "callbackd_tenants"
    std::string tenant_id;  // the payload
  };
  explicit Listener(const DatabaseConfig& db);  // connects and LISTENs; throws DatabaseError
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  // Waits up to `timeout` for notifications and returns those received (possibly none).
  // Throws DatabaseError when the connection is lost (the caller reconnects with backoff).
  std::vector<Notification> wait(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd::pg
