#include "engine/record_batcher.h"

#include <algorithm>
#include <iterator>

#include "core/logging/event.h"
#include "engine/reconciler.h"

namespace callbackd::engine {

using reconcile::Instant;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t kMaxBatch = 200;
// A product decision (docs/architecture.md, step 9): sync_status may lag a response by about
// this much, so that a paced tenant's records share a statement (4 a second instead of 40 at
// 5 tenants x 1,000 a minute; docs/benchmarks.md, round trips).
constexpr milliseconds kMaxBatchAge{250};
// One write after an outage takes up to this many batches' worth of what piled up.
constexpr std::size_t kMaxWrite = kMaxBatch * 5;
// Above this many unwritten records (the database is down or slow), stop sending: nothing
// is lost, and memory stays bounded.
constexpr std::size_t kMaxUnwrittenRecords = 20'000;
constexpr milliseconds kRetry{1'000};

}  // namespace

RecordBatcher::RecordBatcher(boost::asio::io_context& io, Clock& clock, DbWorker& db,
                             std::weak_ptr<const void> lifetime, ReconcilerStats& stats, std::function<void()> wake)
    : io_(io), clock_(clock), db_(db), lifetime_(std::move(lifetime)), stats_(stats), wake_(std::move(wake)) {
  records_.reserve(kMaxBatch);
}

void RecordBatcher::add(reconcile::AttemptRecord record) {
  if (sub_mchids_.count(record.sub_mchid)) maybe_flush(clock_.now(), true);
  if (records_.empty() && drift_checks_.empty()) first_record_at_ = clock_.now();
  sub_mchids_.insert(record.sub_mchid);
  records_.push_back(std::move(record));
  ++stats_.recorded;
}

void RecordBatcher::add_event(reconcile::TenantEvent event) { events_.push_back(std::move(event)); }

void RecordBatcher::add_drift_check(reconcile::DriftCheckRecord record) {
  if (records_.empty() && drift_checks_.empty()) first_record_at_ = clock_.now();
  drift_checks_.push_back(std::move(record));
}

bool RecordBatcher::backlogged() const { return records_.size() >= kMaxUnwrittenRecords; }

std::optional<Instant> RecordBatcher::wake_at() const {
  // A write that is out wakes the loop when it comes back; until then a retry instant that
  // has passed must not (it would spin the loop, issue 13).
  if (write_out_) return std::nullopt;
  if (retry_at_) return retry_at_;
  if (first_record_at_) return *first_record_at_ + kMaxBatchAge;
  return std::nullopt;
}

void RecordBatcher::maybe_flush(Instant now, bool force) {
  if (write_out_ || (records_.empty() && events_.empty() && drift_checks_.empty())) return;
  if (retry_at_ && *retry_at_ > now) return;
  const bool old_enough = first_record_at_ && now - *first_record_at_ >= kMaxBatchAge;
  if (!force && records_.size() + drift_checks_.size() < kMaxBatch && !old_enough && events_.empty()) return;
  write(now);
}

void RecordBatcher::index_pending() {
  sub_mchids_.clear();
  for (const auto& r : records_) sub_mchids_.insert(r.sub_mchid);
}

void RecordBatcher::write(Instant now) {
  // Shared by the database thread (writing it) and this side (putting it back if the write
  // failed).
  struct Batch {
    std::vector<reconcile::AttemptRecord> records;
    std::vector<reconcile::TenantEvent> events;
    std::vector<reconcile::DriftCheckRecord> drift_checks;
  };
  auto batch = std::make_shared<Batch>();
  if (records_.size() <= kMaxWrite) {
    batch->records.swap(records_);  // the common case: everything, without copying
    records_.reserve(kMaxBatch);
    sub_mchids_.clear();
    first_record_at_.reset();
  } else {
    const auto end = records_.begin() + static_cast<std::ptrdiff_t>(kMaxWrite);
    batch->records.assign(std::make_move_iterator(records_.begin()), std::make_move_iterator(end));
    records_.erase(records_.begin(), end);
    index_pending();
    first_record_at_ = now;
  }
  batch->events.swap(events_);
  batch->drift_checks.swap(drift_checks_);
  if (records_.empty()) first_record_at_.reset();
  write_out_ = true;
  db_.call_then(
      io_, lifetime_,
      [batch](Store& store) {
        store.record(batch->records, batch->events);
        // Repeating both after a failure of the second is safe: record() is fenced and idempotent.
        store.record_drift_checks(batch->drift_checks);
      },
      [this, batch](const Result<Done, DatabaseError>& written) {
        write_out_ = false;
        if (written) {
          ++stats_.record_batches;
          retry_at_.reset();
        } else {
          logging::error("record_failed",
                         {{"records", batch->records.size()}, {"error", written.error().what()}, {"action", "retry"}});
          records_.insert(records_.begin(), std::make_move_iterator(batch->records.begin()),
                          std::make_move_iterator(batch->records.end()));
          index_pending();
          events_.insert(events_.begin(), std::make_move_iterator(batch->events.begin()),
                         std::make_move_iterator(batch->events.end()));
          drift_checks_.insert(drift_checks_.begin(), std::make_move_iterator(batch->drift_checks.begin()),
                               std::make_move_iterator(batch->drift_checks.end()));
          first_record_at_ = clock_.now();
          retry_at_ = clock_.now() + kRetry;
        }
        wake_();
      });
}

}  // namespace callbackd::engine
