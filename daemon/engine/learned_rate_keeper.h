// The rates learned from 429s, kept across restarts (core/reconcile/learned_rates.h,
// callbackd.learned_rates): read once at start and given to the scheduler (each tenant's pacer
// and each source address's egress cap resume where they were, moved back towards the
// configured rates by their age), then what changed written every 10 s, one statement,
// only when something moved by 1% or more.
#pragma once

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <optional>

#include "core/config.h"
#include "core/reconcile/learned_rates.h"
#include "core/reconcile/scheduler.h"
#include "engine/clock.h"
#include "engine/db_worker.h"

namespace callbackd::engine {

class LearnedRateKeeper {
 public:
  // `config`: wechatpay.source_addresses names the lanes (lane i: its address; one lane: "").
  LearnedRateKeeper(boost::asio::io_context& io, Clock& clock, DbWorker& db, std::weak_ptr<const void> lifetime,
                    const Config& config, reconcile::FairScheduler& scheduler);

  // Each turn of the run loop: the first reads the learned rates; later ones write changes.
  void on_turn(reconcile::Instant now);
  // For the loop's timer: when on_turn has something to do (nullopt: an answer wakes it).
  std::optional<reconcile::Instant> wake_at() const;

 private:
  std::string lane_key(std::size_t lane) const;

  boost::asio::io_context& io_;
  Clock& clock_;
  DbWorker& db_;
  std::weak_ptr<const void> lifetime_;
  const Config& config_;
  reconcile::FairScheduler& scheduler_;
  bool restored_ = false;
  bool in_flight_ = false;
  std::optional<reconcile::Instant> next_save_;
  // What the table holds of this instance's writing (the rows it wrote and did not forget).
  std::map<reconcile::LearnedKey, double> saved_;
};

}  // namespace callbackd::engine
