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
    const auto delay = std::chrono::ceil<std::chrono::milliseconds>(rec.decision.delay);
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
        {"delay_ms", static_cast<long long>(std::max<long long>(0, delay.count()))},
        {"attempts", rec.decision.attempts},
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
