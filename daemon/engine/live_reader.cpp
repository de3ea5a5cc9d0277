#include "engine/live_reader.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "core/logging/event.h"
#include "engine/attempt.h"
#include "engine/lease_keeper.h"
#include "engine/reconciler.h"
#include "engine/record_batcher.h"
#include "engine/tenant_registry.h"

namespace callbackd::engine {

namespace asio = boost::asio;
using logging::log_id;
using reconcile::Instant;
using std::chrono::milliseconds;

namespace {

// Drift checks are claimed about this many seconds of reads ahead, so that a claim is read well
// within its lease (30 s) and a tenant's checks wait behind few others'.
constexpr double kDriftClaimAheadSeconds = 2.0;
// Without many due checks found, the next claim waits a hundredth of the interval, between 1 s
// and 30 s: checks fall due spread over the interval, so the delay is small against it, and an
// idle instance makes one short claim statement every 30 s at the default interval (24 h).
milliseconds drift_claim_retry(milliseconds interval) {
  return std::clamp(interval / 100, milliseconds{1'000}, milliseconds{30'000});
}

std::string_view read_outcome_name(const wechatpay::ReadOutcome& read) {
  if (!read.answered()) return wechatpay::outcome_name(read.outcome.kind);
  return read.live_notify_url->empty() ? "nothing_set" : "answered";
}

}  // namespace

LiveReader::LiveReader(asio::io_context& io, Clock& clock, http::Sender& client, DbWorker& db,
                       std::weak_ptr<const void> lifetime, const Config& config, const ReconcilerOptions& options,
                       TenantRegistry& tenants, const reconcile::FairScheduler& scheduler, const LeaseKeeper& leases,
                       RecordBatcher& records, ReconcilerStats& stats, std::function<void()> wake)
    : io_(io),
      clock_(clock),
      client_(client),
      db_(db),
      lifetime_(std::move(lifetime)),
      config_(config),
      options_(options),
      tenants_(tenants),
      scheduler_(scheduler),
      leases_(leases),
      records_(records),
      stats_(stats),
      wake_(std::move(wake)),
      pacer_(config.wechatpay.read_rate_per_second) {}

void LiveReader::reconfigure() { pacer_.set_rate(config_.wechatpay.read_rate_per_second); }

std::size_t LiveReader::max_in_flight() const {
  return std::max<std::size_t>(1, config_.wechatpay.max_connections_per_host / 2);
}

int LiveReader::drift_budget() const {
  return std::max(1, static_cast<int>(config_.wechatpay.read_rate_per_second * kDriftClaimAheadSeconds));
}

reconcile::Duration LiveReader::next_check_in(const std::string& sub_mchid) const {
  return reconcile::drift_check_due_in(sub_mchid, config_.reconciler.drift_check_interval, clock_.wall_now());
}

void LiveReader::read_before_send(TenantRuntime& t, reconcile::WorkItem item, Instant now) {
  queues_[t.id()].adoptions.push_back({std::move(item), now});
}

bool LiveReader::already_read(const reconcile::WorkItem& item) const {
  const auto it = read_revisions_.find(item.sub_mchid);
  return it != read_revisions_.end() && it->second == item.desired.revision;
}

std::size_t LiveReader::adoption_pending(const std::string& tenant_id) const {
  const auto it = queues_.find(tenant_id);
  return it == queues_.end() ? 0 : it->second.adoptions.size() + it->second.adoptions_in_flight;
}

bool LiveReader::idle() const { return in_flight_ == 0 && !drift_claim_out_ && queues_.empty(); }

void LiveReader::release_all() {
  stopping_ = true;  // reads still in flight give their claims back when they end
  std::vector<std::int64_t> tokens;
  for (auto& [id, q] : queues_) {
    for (const auto& a : q.adoptions) tokens.push_back(a.item.claim_token);
    q.adoptions.clear();
    drift_waiting_ -= q.drift_checks.size();
    q.drift_checks.clear();
  }
  std::erase_if(queues_, [](const auto& entry) { return entry.second.adoptions_in_flight == 0; });
  tenants_.release_claims(std::move(tokens));
}

bool LiveReader::sends_now(const std::string& tenant_id, Instant now) const {
  const TenantRuntime* t = tenants_.find(tenant_id);
  if (!t || tenants_.scheduled_mode(*t, now) != TenantMode::apply) return false;
  const auto* state = scheduler_.tenant_state(tenant_id);
  return !state || !state->paused_by_error();
}

bool LiveReader::may_read(const std::string& tenant_id, const Adoption& a, Instant now) const {
  // Half the claim's lease: a row still unread by then is given back rather than read and sent
  // under a claim that may lapse meanwhile.
  return sends_now(tenant_id, now) && now - a.claimed_at < leases_.claim_lease(now) / 2;
}

LiveReader::Queue* LiveReader::next_queue(Instant now, std::string& tenant_id) {
  if (queues_.empty()) return nullptr;
  std::vector<std::int64_t> give_back;
  Queue* found = nullptr;
  auto it = queues_.upper_bound(last_served_);
  for (std::size_t looked = 0, n = queues_.size(); looked < n && !found; ++looked) {
    if (it == queues_.end()) it = queues_.begin();
    Queue& q = it->second;
    while (!q.adoptions.empty() && !may_read(it->first, q.adoptions.front(), now)) {
      give_back.push_back(q.adoptions.front().item.claim_token);
      q.adoptions.pop_front();
    }
    if (!sends_now(it->first, now)) {
      drift_waiting_ -= q.drift_checks.size();  // their claims lapse; the rows fall due again
      q.drift_checks.clear();
    }
    if (!q.empty()) {
      found = &q;
      tenant_id = it->first;
      break;
    }
    it = (q.adoptions_in_flight == 0) ? queues_.erase(it) : std::next(it);
  }
  if (!give_back.empty()) {
    logging::info("adoption_claims_returned",
                  {{"claims", give_back.size()}, {"note", "not read in time or the tenant stopped sending here"}});
    tenants_.release_claims(std::move(give_back));
  }
  return found;
}

void LiveReader::on_turn(Instant now, bool stopping) {
  if (stopping) return;
  if (config_.reconciler.drift_check_interval.count() > 0) claim_drift_checks(now);
  while (in_flight_ < max_in_flight()) {
    std::string tenant_id;
    Queue* q = next_queue(now, tenant_id);
    if (!q || !pacer_.try_acquire(now)) break;
    last_served_ = tenant_id;
    ++in_flight_;
    // A tenant's adoptions go first: a POST waits for each of them.
    if (!q->adoptions.empty()) {
      Adoption a = std::move(q->adoptions.front());
      q->adoptions.pop_front();
      ++q->adoptions_in_flight;
      asio::co_spawn(io_, read(tenant_id, std::move(a), std::nullopt, now), asio::detached);
    } else {
      reconcile::DriftCheck check = std::move(q->drift_checks.front());
      q->drift_checks.pop_front();
      --drift_waiting_;
      asio::co_spawn(io_, read(tenant_id, std::nullopt, std::move(check), now), asio::detached);
    }
  }
}

std::optional<Instant> LiveReader::wake_at(Instant now) const {
  std::optional<Instant> wake;
  auto earliest = [&](Instant x) {
    if (x > now && (!wake || x < *wake)) wake = x;
  };
  bool waiting = false;
  for (const auto& [id, q] : queues_) waiting = waiting || !q.empty();
  // A read in flight wakes the loop when it ends; a slot that has come is taken on this turn.
  if (waiting && in_flight_ < max_in_flight()) earliest(pacer_.next_slot(now));
  if (config_.reconciler.drift_check_interval.count() > 0 && !drift_claim_out_) earliest(next_drift_claim_);
  return wake;
}

void LiveReader::claim_drift_checks(Instant now) {
  const int budget = drift_budget();
  if (drift_claim_out_ || now < next_drift_claim_ || drift_waiting_ > static_cast<std::size_t>(budget / 2)) return;
  next_drift_claim_ = now + drift_claim_retry(config_.reconciler.drift_check_interval);
  std::vector<std::string> sending;
  for (const auto& [id, t] : tenants_.all())
    if (tenants_.scheduled_mode(*t, now) == TenantMode::apply) sending.push_back(id);
  const auto plan = reconcile::plan_drift_claim(sending, drift_cursor_, budget);
  if (plan.tenants.empty()) return;
  drift_cursor_ = plan.next_cursor;
  std::vector<reconcile::ClaimRequest> requests;
  for (const auto& id : plan.tenants) requests.push_back({id, plan.per_tenant});
  const std::size_t asked = plan.tenants.size() * static_cast<std::size_t>(plan.per_tenant);
  drift_claim_out_ = true;
  db_.call_then(
      io_, lifetime_,
      [requests, lease = leases_.claim_lease(now)](Store& store) { return store.claim_drift_checks(requests, lease); },
      [this, asked](Result<std::vector<reconcile::DriftCheck>, DatabaseError> claimed) {
        drift_claim_out_ = false;
        if (!claimed) {
          logging::error("drift_claim_failed", {{"error", claimed.error().what()}});
        } else {
          for (auto& check : *claimed) {
            ++drift_waiting_;
            std::string tenant_id = check.tenant_id;
            queues_[tenant_id].drift_checks.push_back(std::move(check));
          }
          // Half of what was asked for or more: more may be due; claim again once these are read.
          if (claimed->size() * 2 >= asked) next_drift_claim_ = clock_.now();
        }
        wake_();
      });
}

asio::awaitable<void> LiveReader::read(std::string tenant_id, std::optional<Adoption> adoption,
                                       std::optional<reconcile::DriftCheck> check, Instant sent_at) {
  const std::weak_ptr<const void> alive = lifetime_;
  const std::string sub_mchid = adoption ? adoption->item.sub_mchid : check->sub_mchid;
  const TenantRuntime* t = tenants_.find(tenant_id);
  // Kept alive across the request: the tenant may be re-keyed or removed meanwhile.
  const std::shared_ptr<const TenantCredentials> credentials = t ? t->credentials : nullptr;
  wechatpay::ReadOutcome read;
  std::optional<int> latency_ms;
  if (!credentials) {
    read.outcome.kind = wechatpay::OutcomeKind::tenant_error;
    read.outcome.error_code = "CREDENTIALS_INVALID";
    read.outcome.error_message = "the tenant's key files are not loaded";
  } else {
    const auto unix_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.wall_now().time_since_epoch()).count();
    auto request = signed_favor_callbacks_read(*credentials, sub_mchid, unix_seconds);
    if (!request) {
      read.outcome.kind = wechatpay::OutcomeKind::transient;
      read.outcome.error_code = "SIGNING_FAILED";
      read.outcome.error_message = request.error();
    } else {
      const auto started = clock_.now();
      http::HttpRequest http_request = std::move(request).value();
      // As the sets' pacers do (engine/dispatcher.cpp): the read pacer counts the read from the
      // instant it is written, not from its slot, so signing, a pool wait or a handshake in
      // between cannot crowd two reads into one second at WeChat Pay.
      http_request.on_write = [this, alive, sent_at] {
        if (!alive.expired()) pacer_.written(sent_at, clock_.now());
      };
      auto response = co_await client_.send(std::move(http_request));
      if (alive.expired()) co_return;
      latency_ms = static_cast<int>(std::chrono::duration_cast<milliseconds>(clock_.now() - started).count());
      read = classify_read_response(*credentials, response, clock_.wall_now(), sub_mchid);
    }
  }
  if (alive.expired()) co_return;
  --in_flight_;
  ++stats_.reads[std::string(read_outcome_name(read))];
  if (read.outcome.kind == wechatpay::OutcomeKind::rate_limited)
    pacer_.on_rate_limited(clock_.now(), sent_at, read.outcome.retry_after);
  if (!read.answered())
    logging::info("read_failed", {{"tenant", log_id(tenant_id)},
                                  {"mchid", log_id(sub_mchid)},
                                  {"for", adoption ? "adoption" : "drift_check"},
                                  {"outcome", wechatpay::outcome_name(read.outcome.kind)},
                                  {"http_status", read.outcome.http_status.value_or(0)},
                                  {"code", read.outcome.error_code},
                                  {"request_id", read.outcome.request_id.value_or("")},
                                  {"error", read.outcome.error_message}});
  if (adoption) {
    --queues_[tenant_id].adoptions_in_flight;
    adoption_read(tenant_id, std::move(*adoption), read, latency_ms);
  } else {
    drift_read(tenant_id, std::move(*check), read);
  }
  if (const auto q = queues_.find(tenant_id); q != queues_.end() && q->second.empty() && !q->second.adoptions_in_flight)
    queues_.erase(q);
  wake_();
}

void LiveReader::adoption_read(const std::string& tenant_id, Adoption adoption, const wechatpay::ReadOutcome& read,
                               std::optional<int> latency_ms) {
  const Instant now = clock_.now();
  reconcile::WorkItem& item = adoption.item;
  if (read.outcome.kind == wechatpay::OutcomeKind::rate_limited && !stopping_) {
    queues_[tenant_id].adoptions.push_front(std::move(adoption));  // read again, more slowly
    return;
  }
  if (read.answered() &&
      reconcile::should_adopt(item.desired.notify_url, item.desired.push_switch, *read.live_notify_url)) {
    reconcile::AttemptRecord rec = reconcile::attempt_record_for(item, "adopted");
    rec.http_status = read.outcome.http_status;
    rec.request_id = read.outcome.request_id;
    rec.latency_ms = latency_ms;
    rec.attempt = item.attempts;  // no POST was made
    rec.decision.state = reconcile::RowState::in_sync;
    rec.decision.remove_from_queue = true;
    rec.decision.attempts = item.attempts;
    rec.live_notify_url = *read.live_notify_url;
    rec.next_read_in = next_check_in(item.sub_mchid);
    ++stats_.adopted;
    logging::debug("adopted", {{"tenant", log_id(tenant_id)},
                               {"mchid", log_id(item.sub_mchid)},
                               {"request_id", read.outcome.request_id.value_or("")}});
    if (options_.on_row_moved) options_.on_row_moved(tenant_id, rec.state_before, rec.decision.state);
    records_.add(std::move(rec));
    return;
  }
  TenantRuntime* t = tenants_.find(tenant_id);
  if (!t) return;  // removed meanwhile: its claims lapse
  if (stopping_ || !sends_now(tenant_id, now)) {
    tenants_.release_claims({item.claim_token});
    return;
  }
  // Not what is desired (or nothing set, or the read failed): the POST as before. A read that
  // failed is not remembered: the row may be read again before a retry.
  if (read.answered()) {
    if (read_revisions_.size() >= 100'000) read_revisions_.clear();  // bounded; at worst a read again
    read_revisions_[item.sub_mchid] = item.desired.revision;
  }
  t->buffer.push_back(std::move(item));
  tenants_.update_due(*t);
}

void LiveReader::drift_read(const std::string& tenant_id, reconcile::DriftCheck check,
                            const wechatpay::ReadOutcome& read) {
  if (read.outcome.kind == wechatpay::OutcomeKind::rate_limited) {
    ++drift_waiting_;
    queues_[tenant_id].drift_checks.push_front(std::move(check));  // read again, more slowly
    return;
  }
  reconcile::DriftCheckRecord rec;
  rec.next_read_in = next_check_in(check.sub_mchid);
  if (read.answered()) {
    rec.live_notify_url = *read.live_notify_url;
    rec.drifted = reconcile::is_drift(check.applied_notify_url.value_or(""), *read.live_notify_url);
    rec.http_status = read.outcome.http_status;
    rec.request_id = read.outcome.request_id;
    if (rec.drifted) {
      ++stats_.drift_detected;
      logging::warn("drift_detected", {{"tenant", log_id(tenant_id)},
                                       {"mchid", log_id(check.sub_mchid)},
                                       {"live_notify_url", *read.live_notify_url},
                                       {"applied_notify_url", check.applied_notify_url.value_or("")},
                                       {"request_id", read.outcome.request_id.value_or("")}});
    }
  }
  rec.check = std::move(check);
  records_.add_drift_check(std::move(rec));
}

}  // namespace callbackd::engine
