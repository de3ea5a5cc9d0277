// Recording a batch of attempts and tenant events: one statement (sql/record_batch.sql), so
// one transaction and one round trip per batch.
#include <nlohmann/json.hpp>

#include "core/wechatpay/update_time.h"
#include "pg/store_session.h"

namespace callbackd::pg {

using reconcile::AttemptRecord;
using reconcile::TenantEvent;

namespace {

nlohmann::json json_or_null(const std::optional<std::string>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
nlohmann::json json_or_null(const std::optional<int>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
nlohmann::json json_or_null(const std::optional<bool>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
long long millis_up(reconcile::Duration d) {
  return std::max<long long>(0, std::chrono::ceil<std::chrono::milliseconds>(d).count());
}

}  // namespace

void ReconcileStore::record(const std::vector<AttemptRecord>& records, const std::vector<TenantEvent>& events) {
  if (records.empty() && events.empty()) return;
  nlohmann::json batch = nlohmann::json::array();
  int seq = 0;
  for (const auto& rec : records) {
    // Parsed here, by the same parser as everywhere else, so that a malformed update_time is
    // stored verbatim with a NULL parsed copy instead of failing the batch in a SQL cast.
    nlohmann::json update_time_ms;
    if (rec.update_time) {
      if (auto t = wechatpay::parse_update_time(*rec.update_time)) update_time_ms = t->time_since_epoch().count();
    }
    batch.push_back({
        {"seq", seq++},
        {"tenant_id", rec.tenant_id},
        {"mchid", rec.sub_mchid},
        {"revision", rec.revision},
        {"claim_token", rec.claim_token},
        {"notify_url", json_or_null(rec.notify_url)},
        {"switch", json_or_null(rec.push_switch)},
        {"outcome", rec.outcome},
        {"http_status", json_or_null(rec.http_status)},
        {"error_code", rec.error_code},
        {"error_message", rec.error_message},
        {"request_id", json_or_null(rec.request_id)},
        {"latency_ms", json_or_null(rec.latency_ms)},
        {"attempt", rec.attempt},
        {"update_time", json_or_null(rec.update_time)},
        {"update_time_ms", update_time_ms},
        {"state", std::string(reconcile::row_state_name(rec.decision.state))},
        {"remove", rec.decision.remove_from_queue},
        {"delay_ms", millis_up(rec.decision.delay)},
        {"attempts", rec.decision.attempts},
        {"live_notify_url", json_or_null(rec.live_notify_url)},
        {"next_read_ms", rec.next_read_in ? nlohmann::json(millis_up(*rec.next_read_in)) : nlohmann::json()},
    });
  }
  nlohmann::json tenant_events = nlohmann::json::array();
  seq = 0;
  for (const auto& e : events) {
    tenant_events.push_back({{"seq", seq++},
                             {"tenant_id", e.tenant_id},
                             {"outcome", e.outcome},
                             {"error_code", e.error_code},
                             {"error_message", e.error_message}});
  }
  // dump() with the replace handler: bytes from the network that are not UTF-8 (an error
  // message, a Request-ID) must not make the batch unserialisable.
  const std::string attempts_json = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string events_json = tenant_events.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  impl_->run("recording attempts in callbackd.audit_log and sub_merchant_state", [&](pqxx::connection& c) {
    impl_->exec1(c, "record_batch", attempts_json, events_json, impl_->instance);
  });
}

}  // namespace callbackd::pg

namespace callbackd::pg {

void ReconcileStore::record_drift_checks(const std::vector<reconcile::DriftCheckRecord>& records) {
  if (records.empty()) return;
  nlohmann::json batch = nlohmann::json::array();
  int seq = 0;
  for (const auto& rec : records) {
    batch.push_back({
        {"seq", seq++},
        {"mchid", rec.check.sub_mchid},
        {"tenant_id", rec.check.tenant_id},
        {"read_token", rec.check.read_token},
        {"applied_notify_url", json_or_null(rec.check.applied_notify_url)},
        {"answered", rec.live_notify_url.has_value()},
        {"live_notify_url", json_or_null(rec.live_notify_url)},
        {"drifted", rec.drifted},
        {"http_status", json_or_null(rec.http_status)},
        {"request_id", json_or_null(rec.request_id)},
        {"next_read_ms", millis_up(rec.next_read_in)},
        {"revision", rec.check.revision},
    });
  }
  const std::string checks_json = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  impl_->run("recording drift checks in callbackd.sub_merchant_state and audit_log",
             [&](pqxx::connection& c) { impl_->exec1(c, "record_drift_checks", checks_json, impl_->instance); });
}

std::vector<reconcile::DriftCheck> ReconcileStore::claim_drift_checks(
    const std::vector<reconcile::ClaimRequest>& requests, std::chrono::milliseconds lease) {
  CALLBACKD_ASSERT(lease.count() > 0);
  std::vector<reconcile::DriftCheck> checks;
  if (requests.empty()) return checks;
  nlohmann::json batch = nlohmann::json::array();
  for (std::size_t i = 0; i < requests.size(); ++i)
    batch.push_back({{"ord", i}, {"tenant_id", requests[i].tenant_id}, {"claim_limit", requests[i].limit}});
  const std::string requests_json = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return impl_->run("claiming drift checks in callbackd.sub_merchant_state", [&](pqxx::connection& c) {
    for (const auto& r : impl_->exec1(c, "claim_drift_checks", requests_json, millis(lease))) {
      reconcile::DriftCheck check;
      check.sub_mchid = r["mchid"].as<std::string>();
      check.tenant_id = r["tenant_id"].as<std::string>();
      check.read_token = r["read_token"].as<std::int64_t>();
      if (!r["applied_notify_url"].is_null()) check.applied_notify_url = r["applied_notify_url"].as<std::string>();
      check.revision = r["revision"].as<std::int64_t>();
      checks.push_back(std::move(check));
    }
    return checks;
  });
}

}  // namespace callbackd::pg
