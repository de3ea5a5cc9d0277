// Attempt records and tenant events on their way to the database: batched, so that one round
// trip writes many (the database stays far from being the bottleneck at thousands of requests
// a second), and written within an age bound: sync_status may be up to about 250 ms behind a
// response (docs/architecture.md, step 9). A failed write loses nothing: the batch goes back
// in front, in order, and is retried. Runs on the io_context; the writes go through the
// DbWorker.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/reconcile/time.h"
#include "core/reconcile/work.h"
#include "engine/clock.h"
#include "engine/db_worker.h"

namespace callbackd::engine {

struct ReconcilerStats;

class RecordBatcher {
 public:
  // `wake` is called when a write came back (the loop may flush the next batch or stop).
  RecordBatcher(boost::asio::io_context& io, Clock& clock, DbWorker& db, std::weak_ptr<const void> lifetime,
                ReconcilerStats& stats, std::function<void()> wake);

  // A record of one attempt (or of an invalid row). The same sub-merchant twice in one batch
  // would write its state row twice in one statement: what is pending is written first.
  void add(reconcile::AttemptRecord record);
  void add_event(reconcile::TenantEvent event);
  // What a drift check found (engine/live_reader.h): written with the next batch, right after its
  // attempt records, by the same database call.
  void add_drift_check(reconcile::DriftCheckRecord record);

  // Writes a batch when it is full or old enough, or whatever is pending when `force`
  // (shutdown), unless a write is out or the last one failed less than a retry interval ago.
  void maybe_flush(reconcile::Instant now, bool force);

  // When time alone makes a flush due (nullopt: a write is out, whose answer wakes the loop,
  // or nothing is pending).
  std::optional<reconcile::Instant> wake_at() const;
  // Nothing pending, nothing being written.
  bool idle() const { return !write_out_ && records_.empty() && events_.empty() && drift_checks_.empty(); }
  // Too much unwritten (the database is down or slow): sending stops until it is written.
  bool backlogged() const;
  // The last write failed and its retry is pending.
  bool failing() const { return retry_at_.has_value(); }
  std::size_t unwritten() const { return records_.size(); }

 private:
  void write(reconcile::Instant now);
  void index_pending();

  boost::asio::io_context& io_;
  Clock& clock_;
  DbWorker& db_;
  std::weak_ptr<const void> lifetime_;
  ReconcilerStats& stats_;
  std::function<void()> wake_;
  std::vector<reconcile::AttemptRecord> records_;
  std::set<std::string> sub_mchids_;  // of records_
  std::vector<reconcile::TenantEvent> events_;
  std::vector<reconcile::DriftCheckRecord> drift_checks_;
  std::optional<reconcile::Instant> first_record_at_;
  bool write_out_ = false;
  std::optional<reconcile::Instant> retry_at_;
};

}  // namespace callbackd::engine
