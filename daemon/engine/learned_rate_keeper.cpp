#include "engine/learned_rate_keeper.h"

#include "core/logging/event.h"

namespace callbackd::engine {

using reconcile::Instant;
using reconcile::LearnedKey;
using reconcile::LearnedRate;
using reconcile::LearnedScope;

namespace {
constexpr std::chrono::seconds kSaveInterval{10};
}  // namespace

LearnedRateKeeper::LearnedRateKeeper(boost::asio::io_context& io, Clock& clock, DbWorker& db,
                                     std::weak_ptr<const void> lifetime, const Config& config,
                                     reconcile::FairScheduler& scheduler)
    : io_(io), clock_(clock), db_(db), lifetime_(std::move(lifetime)), config_(config), scheduler_(scheduler) {}

std::string LearnedRateKeeper::lane_key(std::size_t lane) const {
  const auto& addresses = config_.wechatpay.source_addresses;
  return lane < addresses.size() ? addresses[lane] : std::string();
}

std::optional<Instant> LearnedRateKeeper::wake_at() const {
  if (in_flight_) return std::nullopt;
  return next_save_;
}

void LearnedRateKeeper::on_turn(Instant now) {
  if (in_flight_ || (next_save_ && now < *next_save_)) return;
  in_flight_ = true;
  if (!restored_) {
    db_.call_then(
        io_, lifetime_, [](Store& store) { return store.learned_rates(); },
        [this](Result<std::vector<LearnedRate>, DatabaseError> rows) {
          in_flight_ = false;
          restored_ = true;
          const Instant read_at = clock_.now();
          next_save_ = read_at + kSaveInterval;
          if (!rows) {
            logging::warn("learned_rates_unread",
                          {{"error", rows.error().what()}, {"note", "starting from the configured rates"}});
            return;
          }
          std::map<std::string, LearnedRate> tenants;
          std::map<std::size_t, LearnedRate> lanes;
          const std::size_t lane_count = std::max<std::size_t>(1, config_.wechatpay.source_addresses.size());
          for (auto& row : *rows) {
            if (row.scope == LearnedScope::tenant) {
              tenants[row.key] = row;
              continue;
            }
            for (std::size_t lane = 0; lane < lane_count; ++lane)
              if (lane_key(lane) == row.key) lanes[lane] = row;
          }
          if (!tenants.empty() || !lanes.empty())
            logging::info("learned_rates_restored", {{"tenants", tenants.size()}, {"source_addresses", lanes.size()}});
          scheduler_.restore_learned(tenants, lanes, read_at);
        });
    return;
  }
  next_save_ = now + kSaveInterval;
  std::map<LearnedKey, double> current;
  for (const auto& [id, rate] : scheduler_.learned_tenant_rates(now)) current[{LearnedScope::tenant, id}] = rate;
  for (const auto& [lane, rate] : scheduler_.egress().learned(now))
    current[{LearnedScope::source_address, lane_key(lane)}] = rate;
  auto changes = reconcile::learned_rate_changes(saved_, current);
  if (changes.empty()) {
    in_flight_ = false;
    return;
  }
  db_.call_then(
      io_, lifetime_, [changes](Store& store) { store.save_learned_rates(changes); },
      [this, changes](const Result<Done, DatabaseError>& saved) {
        in_flight_ = false;
        if (!saved) {
          logging::warn("learned_rates_unsaved",
                        {{"error", saved.error().what()}, {"note", "written again at the next try"}});
          return;
        }
        for (const auto& change : changes) {
          const LearnedKey key{change.scope, change.key};
          if (change.rate_per_minute)
            saved_[key] = *change.rate_per_minute;
          else
            saved_.erase(key);
        }
      });
}

}  // namespace callbackd::engine
