#include "core/metrics/admission.h"

namespace callbackd::metrics {

ConnectionAdmission::Decision ConnectionAdmission::admit(Id id, const std::string& address) {
  Decision d;
  // The address's own limit first: at it, only its own oldest waiting connection can make room.
  if (open_from(address) >= per_address_) {
    d.evict = longest_waiting(address);
    if (!d.evict) return d;  // all of its connections are answering requests
  } else if (connections_.size() >= total_) {
    d.evict = longest_waiting(std::nullopt);
    if (!d.evict) return d;  // every connection is answering a request
  }
  if (d.evict) connections_.erase(*d.evict);
  connections_[id] = Connection{address, sequence_++};
  d.accept = true;
  return d;
}

void ConnectionAdmission::busy(Id id) {
  if (auto it = connections_.find(id); it != connections_.end()) it->second.waiting_since.reset();
}

void ConnectionAdmission::waiting(Id id) {
  if (auto it = connections_.find(id); it != connections_.end()) it->second.waiting_since = sequence_++;
}

void ConnectionAdmission::closed(Id id) { connections_.erase(id); }

std::size_t ConnectionAdmission::open_from(const std::string& address) const {
  std::size_t n = 0;
  for (const auto& [id, c] : connections_) n += c.address == address;
  return n;
}

std::optional<ConnectionAdmission::Id> ConnectionAdmission::longest_waiting(
    const std::optional<std::string>& address) const {
  std::optional<Id> best;
  std::uint64_t since = 0;
  for (const auto& [id, c] : connections_) {
    if (!c.waiting_since || (address && c.address != *address)) continue;
    if (!best || *c.waiting_since < since) {
      best = id;
      since = *c.waiting_since;
    }
  }
  return best;
}

}  // namespace callbackd::metrics
