#include "core/reconcile/certificate_refresh.h"

#include <algorithm>
#include <cstdint>

namespace callbackd::reconcile {

double certificate_refresh_share(std::string_view tenant_id) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : tenant_id) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  // FNV-1a leaves ids that differ only at the end (tenant-1, tenant-2) close in the high bits:
  // splitmix64's finaliser spreads them over the whole range.
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBULL;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) / static_cast<double>(1ULL << 53);
}

std::chrono::milliseconds certificate_refresh_wait(std::chrono::milliseconds since_fetched,
                                                   std::string_view tenant_id) {
  using std::chrono::milliseconds;
  const double share = certificate_refresh_share(tenant_id);
  const auto spread = std::chrono::duration_cast<milliseconds>(kCertificateRefreshSpread);
  const milliseconds due = std::chrono::duration_cast<milliseconds>(kCertificateRefreshInterval) -
                           milliseconds(static_cast<long long>(share * static_cast<double>(spread.count())));
  const milliseconds wait = due - std::max(milliseconds{0}, since_fetched);
  if (wait > milliseconds{0}) return wait;
  const auto overdue = std::chrono::duration_cast<milliseconds>(kOverdueRefreshSpread);
  return milliseconds(static_cast<long long>(share * static_cast<double>(overdue.count())));
}

}  // namespace callbackd::reconcile
