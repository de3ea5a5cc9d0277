#include "engine/dispatcher.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "core/logging/event.h"
#include "core/reconcile/live_state.h"
#include "engine/attempt.h"
#include "engine/certificate_keeper.h"
#include "engine/reconciler.h"
#include "engine/record_batcher.h"
#include "engine/tenant_registry.h"

namespace callbackd::engine {

namespace asio = boost::asio;
using logging::log_id;
using reconcile::Instant;
using std::chrono::milliseconds;

namespace {

int to_ms(reconcile::Duration d) { return static_cast<int>(std::chrono::duration_cast<milliseconds>(d).count()); }

}  // namespace

Dispatcher::Dispatcher(asio::io_context& io, Clock& clock, http::Sender& client, std::weak_ptr<const void> lifetime,
                       const Config& config, const reconcile::RowPolicy& policy, const ReconcilerOptions& options,
                       TenantRegistry& tenants, CertificateKeeper& certificates, reconcile::FairScheduler& scheduler,
                       RecordBatcher& records, ReconcilerStats& stats, std::mt19937_64& random,
                       std::function<void()> wake)
    : io_(io),
      clock_(clock),
      client_(client),
      lifetime_(std::move(lifetime)),
      config_(config),
      policy_(policy),
      options_(options),
      tenants_(tenants),
      certificates_(certificates),
      scheduler_(scheduler),
      records_(records),
      stats_(stats),
      random_(random),
      wake_(std::move(wake)) {}

std::size_t Dispatcher::in_flight() const {
  std::size_t n = 0;
  for (const auto& [id, t] : std::as_const(tenants_).all()) n += t->in_flight.size();
  return n;
}

void Dispatcher::dispatch(const reconcile::Dispatch& d, Instant now) {
  TenantRuntime* t = tenants_.find(d.tenant_id);
  CALLBACKD_ASSERT(t && !t->buffer.empty());  // the scheduler only dispatches tenants with due rows
  reconcile::WorkItem item = std::move(t->buffer.front());
  t->buffer.pop_front();
  tenants_.update_due(*t);
  t->in_flight.insert(item.sub_mchid);
  asio::co_spawn(io_, attempt(d.tenant_id, std::move(item), d, now), asio::detached);
}

asio::awaitable<void> Dispatcher::attempt(std::string tenant_id, reconcile::WorkItem item, reconcile::Dispatch dispatch,
                                          Instant sent_at) {
  const std::weak_ptr<const void> alive = lifetime_;
  TenantRuntime* t = tenants_.find(tenant_id);
  if (!t->credentials) {
    // A tenant whose key files failed to load is probed by loading them again, not by a request.
    // Through the cache: unchanged files cost their reading and permission checks, no crypto.
    auto loaded = load_tenant_credentials(t->row, config_.credentials_dir, &tenants_.key_cache());
    if (loaded) t->credentials = std::make_shared<const TenantCredentials>(std::move(loaded).value());
  }
  wechatpay::Outcome outcome;
  std::optional<int> latency_ms;
  reconcile::EndpointReach reach = reconcile::EndpointReach::not_sent;
  std::optional<wechatpay::DownloadVerdict> certificate_refusal;
  if (!t->credentials) {
    outcome.kind = wechatpay::OutcomeKind::tenant_error;
    outcome.error_code = "CREDENTIALS_INVALID";
    outcome.error_message = "the tenant's key files still fail to load (see callbackd check-config)";
  } else {
    const auto unix_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.wall_now().time_since_epoch()).count();
    auto request = signed_favor_callbacks_request(*t->credentials, item.sub_mchid, item.desired.notify_url,
                                                  item.desired.push_switch, unix_seconds);
    if (!request) {
      outcome.kind = wechatpay::OutcomeKind::transient;
      outcome.error_code = "SIGNING_FAILED";
      outcome.error_message = request.error();
    } else {
      ++stats_.sent;
      const auto started = clock_.now();
      // `t` may be gone when the response arrives (tenant deleted); its keys are kept alive here.
      std::shared_ptr<const TenantCredentials> credentials = t->credentials;
      http::HttpRequest http_request = std::move(request).value();
      http_request.source = dispatch.source;  // the egress lane the scheduler gave this slot
      // The pacers count the request from the instant it is written, not from its slot (the
      // signing above, a pool wait or a handshake lie between); the scheduler outlives the
      // request only while `alive` holds.
      http_request.on_write = [this, alive, tenant_id, source = dispatch.source, sent_at] {
        if (!alive.expired()) scheduler_.written(tenant_id, source, sent_at, clock_.now());
      };
      auto response = co_await client_.send(std::move(http_request));
      if (alive.expired()) co_return;
      latency_ms = to_ms(clock_.now() - started);
      // Certificate mode: a certificate we did not have when this request was signed (the
      // first response, or a rotation). The tenant may have learned it meanwhile (a download
      // for another request); if not, download, then verify this same response again. Only a
      // serial still unknown, or a download refused, makes it a tenant error.
      auto current = [&] {
        const TenantRuntime* now_t = tenants_.find(tenant_id);
        return now_t && now_t->credentials ? now_t->credentials : credentials;
      };
      if (names_unknown_platform_certificate(*credentials, response, clock_.wall_now())) {
        credentials = current();
        if (names_unknown_platform_certificate(*credentials, response, clock_.wall_now())) {
          const auto verdict = co_await certificates_.refresh(tenant_id, "response signed by an unknown certificate");
          if (alive.expired()) co_return;
          credentials = current();
          if (verdict.kind == wechatpay::DownloadVerdict::Kind::refused ||
              verdict.kind == wechatpay::DownloadVerdict::Kind::no_platform_certificate)
            certificate_refusal = verdict;
        }
      }
      outcome = classify_response(*credentials, response, clock_.wall_now(), item.desired.notify_url);
      if (certificate_refusal && outcome.kind == wechatpay::OutcomeKind::tenant_error) {
        // The response stays unverified because the download was refused: that is the reason.
        outcome.error_code = certificate_refusal->code;
        outcome.error_message = certificate_refusal->reason;
      }
      reach = reach_of(response, outcome);
      if (credentials->apiv3_key && outcome.kind == wechatpay::OutcomeKind::applied)
        tenants_.certificate_used(tenant_id, http::response_headers(response.value()).serial.value_or(""));
    }
  }
  if (alive.expired()) co_return;
  finish(tenant_id, item, dispatch, sent_at, outcome, latency_ms, reach);
}

void Dispatcher::finish(const std::string& tenant_id, const reconcile::WorkItem& item,
                        const reconcile::Dispatch& dispatch, Instant sent_at, const wechatpay::Outcome& outcome,
                        std::optional<int> latency_ms, reconcile::EndpointReach reach) {
  const Instant now = clock_.now();
  TenantRuntime* t = tenants_.find(tenant_id);
  if (t) t->in_flight.erase(item.sub_mchid);

  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  reconcile::FinishedAttempt finished{
      outcome.kind,        dispatch.probe,     dispatch.endpoint_probe, reach,          uniform(random_), sent_at,
      outcome.retry_after, outcome.error_code, outcome.error_message,   item.sub_mchid, dispatch.source};
  const bool was_held = scheduler_.endpoint().held();
  const int failed_probes_before = scheduler_.endpoint().failed_probes();
  const auto transition = scheduler_.on_finished(tenant_id, finished, now);
  on_endpoint_change(was_held, failed_probes_before, outcome, now);
  const auto decision = reconcile::decide_after_attempt({outcome.kind, outcome.retry_after, item.attempts}, policy_,
                                                        now, uniform(random_));
  const std::string outcome_name(wechatpay::outcome_name(outcome.kind));
  ++stats_.outcomes[outcome_name];
  if (options_.on_attempt) options_.on_attempt({tenant_id, outcome_name, outcome.error_code, latency_ms});

  reconcile::AttemptRecord rec = reconcile::attempt_record_for(item, outcome_name);
  rec.http_status = outcome.http_status;
  rec.error_code = outcome.error_code;
  rec.error_message = outcome.error_message;
  rec.request_id = outcome.request_id;
  rec.latency_ms = latency_ms;
  if (outcome.applied && !outcome.applied->update_time_text.empty())
    rec.update_time = outcome.applied->update_time_text;
  rec.decision = decision;
  if (decision.state == reconcile::RowState::in_sync)  // its first drift check (live_state.h)
    rec.next_read_in =
        reconcile::drift_check_due_in(item.sub_mchid, config_.reconciler.drift_check_interval, clock_.wall_now());

  if (!outcome.warning.empty()) {
    // Applied (WeChat Pay signed its success), but the answer was not the documented one: the
    // audit row carries the warning, and the operator hears of it once per attempt.
    rec.error_message = outcome.warning;
    logging::warn("applied_with_warning",
                  {{"tenant", log_id(tenant_id)},
                   {"mchid", log_id(item.sub_mchid)},
                   {"request_id", outcome.request_id.value_or("")},
                   {"update_time", outcome.applied ? outcome.applied->update_time_text : std::string{}},
                   {"warning", outcome.warning}});
  } else if (outcome.kind == wechatpay::OutcomeKind::applied) {
    logging::debug("applied", {{"tenant", log_id(tenant_id)},
                               {"mchid", log_id(item.sub_mchid)},
                               {"request_id", outcome.request_id.value_or("")},
                               {"latency_ms", latency_ms.value_or(0)}});
  } else {
    logging::info("attempt_failed", {{"tenant", log_id(tenant_id)},
                                     {"mchid", log_id(item.sub_mchid)},
                                     {"outcome", outcome_name},
                                     {"http_status", outcome.http_status.value_or(0)},
                                     {"code", outcome.error_code},
                                     {"request_id", outcome.request_id.value_or("")},
                                     {"error", outcome.error_message}});
  }
  if (options_.on_row_moved) options_.on_row_moved(tenant_id, rec.state_before, rec.decision.state);
  records_.add(std::move(rec));

  if (t) {
    if (transition == reconcile::TenantTransition::paused) {
      tenants_.pause(tenant_id, outcome.error_code, outcome.error_message, false);
    } else if (transition == reconcile::TenantTransition::resumed) {
      tenants_.wake_up(*t);
      tenants_.resumed(tenant_id, "probe applied");
    }
  }
  wake_();
}

void Dispatcher::on_endpoint_change(bool was_held, int failed_probes_before, const wechatpay::Outcome& outcome,
                                    Instant now) {
  const auto& hold = scheduler_.endpoint();
  if (!was_held && hold.held()) {
    ++stats_.endpoint_holds;
    const std::string_view reason = reconcile::endpoint_hold_reason_name(hold.reason());
    ++stats_.endpoint_holds_by_reason[std::string(reason)];
    // reason=not_wechatpay: something on the path (a proxy, a WAF) answers instead of WeChat Pay.
    logging::warn("wechatpay_unreachable", {{"reason", reason},
                                            {"code", outcome.error_code},
                                            {"http_status", outcome.http_status.value_or(0)},
                                            {"error", outcome.error_message},
                                            {"next_probe_in_ms", to_ms(hold.next_probe_at() - now)},
                                            {"note",
                                             "sending is held; one probe request per backoff step until one "
                                             "reaches WeChat Pay"}});
  } else if (was_held && !hold.held()) {
    logging::info("wechatpay_reachable", {{"reason", reconcile::endpoint_hold_reason_name(hold.reason())},
                                          {"held_ms", to_ms(now - hold.held_since())},
                                          {"failed_probes", hold.failed_probes()}});
  } else if (hold.held() && hold.failed_probes() > failed_probes_before) {
    ++stats_.endpoint_probes_failed;
    logging::debug("wechatpay_probe_failed", {{"reason", reconcile::endpoint_hold_reason_name(hold.reason())},
                                              {"failed_probes", hold.failed_probes()},
                                              {"next_probe_in_ms", to_ms(hold.next_probe_at() - now)}});
  } else {
    return;
  }
  if (hold.held()) hold_buffers();
}

void Dispatcher::hold_buffers() {
  // Give every claimed, unsent row back: the wait until the next probe may be longer than a
  // claim's lease. The rows stay due; the claim gate takes one again for the probe.
  for (auto& [id, t] : tenants_.all()) {
    tenants_.release_buffer(*t);
    tenants_.wake_up(*t);
  }
}

}  // namespace callbackd::engine
