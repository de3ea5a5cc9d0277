// The LISTEN connection: a connection of its own, waited on by a thread of its own.
#include "pg/listener.h"

#include <pqxx/pqxx>

#include "core/error.h"
#include "core/text.h"
#include "pg/connection.h"
#include "pg/conninfo.h"

namespace callbackd::pg {

namespace {

// One receiver per channel; libpqxx LISTENs when it is constructed.
class ChannelReceiver final : public pqxx::notification_receiver {
 public:
  ChannelReceiver(pqxx::connection_base& c, const std::string& channel, std::vector<Listener::Notification>& sink)
      : pqxx::notification_receiver(c, channel), sink_(sink) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override { sink_.push_back({channel(), payload}); }

 private:
  std::vector<Listener::Notification>& sink_;
};

}  // namespace

struct Listener::Impl {
  std::string where;
  std::unique_ptr<pqxx::connection> conn;
  std::vector<Notification> received;
  std::vector<std::unique_ptr<ChannelReceiver>> receivers;
  bool broken = false;
};

Listener::Listener(const DatabaseConfig& db) : impl_(std::make_unique<Impl>()) {
  impl_->where = describe_conninfo(db.url);
  impl_->conn = open_connection(db, "callbackd-listen");
  try {
    for (const char* channel : {"callbackd_desired", "callbackd_tenants"})
      impl_->receivers.push_back(std::make_unique<ChannelReceiver>(*impl_->conn, channel, impl_->received));
  } catch (const pqxx::failure& e) {
    throw DatabaseError("cannot LISTEN on PostgreSQL at " + impl_->where + ": " + trimmed(e.what()));
  }
}

Listener::~Listener() {
  // Receivers unregister (UNLISTEN) while the connection still exists; on a broken connection
  // that may fail, which must not escape a destructor.
  try {
    impl_->receivers.clear();
  } catch (...) {}
}

std::vector<Listener::Notification> Listener::wait(std::chrono::milliseconds timeout) {
  if (impl_->broken)
    throw DatabaseError("LISTEN connection to PostgreSQL at " + impl_->where + " was lost; create a new Listener");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  try {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
      const long long us = std::max<long long>(0, left.count());
      impl_->conn->await_notification(static_cast<long>(us / 1'000'000), static_cast<long>(us % 1'000'000));
      // A closed socket wakes await_notification at once without notifications; libpq
      // notices the loss only on the next read, so check explicitly rather than spin.
      if (!impl_->conn->is_open()) throw pqxx::broken_connection("the server closed the connection");
      if (!impl_->received.empty() || us == 0 || std::chrono::steady_clock::now() >= deadline) break;
    }
  } catch (const pqxx::failure& e) {
    impl_->broken = true;
    throw DatabaseError("lost the LISTEN connection to PostgreSQL at " + impl_->where + ": " + trimmed(e.what()));
  }
  std::vector<Notification> out;
  out.swap(impl_->received);
  return out;
}

}  // namespace callbackd::pg
