#include "app/operations.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <ctime>

#include "app/logging.h"
#include "app/sd_notify.h"
#include "core/tenant.h"

namespace callbackd::app {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
constexpr auto kTick = seconds{1};
// The status page: its database answers are reused this long; at most this many pages cached.
constexpr auto kPageCacheFor = seconds{2};
constexpr std::size_t kPageCacheEntries = 64;
// Page loads waiting for the database at once. More are answered 503 at once: a flood of
// page loads must neither queue up work on the database thread nor hold the listener's
// connection slots busy, which /healthz needs (core/metrics/admission.h).
constexpr int kPageQueriesAtOnce = 2;
constexpr auto kStatusEvery = seconds{10};
// The queue query: one grouped scan of pending_work; cheap, but not on every scrape.
constexpr auto kQueueQueryEvery = seconds{10};
// The row counts' bookkeeping (migrations/0014_row_state_counts.sql): the changes of the last
// seconds folded into the kept counts, so that whoever reads the counts recomputes only those.
// A full batch means more are waiting (a bulk load): the next batch follows at once.
constexpr auto kFoldEvery = seconds{2};
constexpr int kFoldBatch = 5000;  // ~0.1 s of the database's time (docs/benchmarks.md)
// /readyz: the database answered within this long.
constexpr auto kDatabaseFresh = seconds{45};
// /healthz: the loop's heartbeat (kTick) is older than this: the loop is stuck.
constexpr auto kHeartbeatStale = seconds{10};

const metrics::Labels kNone{};
metrics::Labels tenant_label(const std::string& tenant) { return {{"tenant", tenant}}; }
}  // namespace

Operations::Operations(asio::io_context& io, const Config& config, http::HttpsClient& client, engine::DbWorker& db,
                       engine::DbWorker& page_db, std::string instance)
    : io_(io),
      config_(config),
      client_(client),
      db_(db),
      page_db_(page_db),
      tick_timer_(io),
      watchdog_timer_(io),
      heartbeat_(SteadyClock::now()),
      instance_(std::move(instance)),
      alive_(std::make_shared<bool>(true)) {
  using metrics::Type;
  auto& r = registry_;
  r.declare("callbackd_build_info", Type::gauge, "Always 1; the version label says which build runs.");
  r.declare("callbackd_ready", Type::gauge,
            "1 when /readyz answers 200 (database reachable, tenants and keys loaded).");
  r.declare("callbackd_database_up", Type::gauge, "1 when the last periodic query of the database succeeded.");
  r.declare("callbackd_requests_total", Type::counter,
            "Attempts to set a notify URL that reached a verdict, by tenant and outcome.");
  r.declare("callbackd_request_errors_total", Type::counter,
            "Attempts that did not apply, by tenant and error code (WeChat Pay's code or the daemon's).");
  r.declare("callbackd_request_duration_seconds", Type::histogram,
            "Time from sending a request to its complete response, by tenant.",
            {0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  r.declare("callbackd_pending_rows", Type::gauge, "Rows queued in callbackd.pending_work, by tenant.");
  r.declare("callbackd_oldest_pending_change_seconds", Type::gauge,
            "Age of the oldest queued change (desired_callbacks.updated_at), by tenant; 0 when none. "
            "Changes held by the change budget are not counted (callbackd_held_rows).");
  r.declare("callbackd_held_rows", Type::gauge,
            "Rows held by the tenant's change budget (tenants.max_changes_per_hour) until approved, by tenant.");
  r.declare("callbackd_tenants", Type::gauge, "Tenants known to this instance.");
  r.declare("callbackd_paused_tenants", Type::gauge, "Tenants not sending: mode paused/observe or paused by an error.");
  r.declare("callbackd_tenant_paused", Type::gauge,
            "1 when the tenant does not send, with the reason (mode_paused, mode_observe, error).");
  r.declare("callbackd_tenant_rate_per_minute", Type::gauge,
            "The tenant's effective request rate (its rate_per_minute, lower after a 429).");
  r.declare("callbackd_tenant_throttled", Type::gauge, "1 while the tenant's pacer runs below its configured rate.");
  r.declare("callbackd_in_flight", Type::gauge, "Requests in flight, by tenant.");
  r.declare("callbackd_buffered_rows", Type::gauge, "Rows claimed and waiting for a pacer slot, by tenant.");
  r.declare("callbackd_records_written_total", Type::counter, "Attempt records handed to the database.");
  r.declare("callbackd_invalid_rows_total", Type::counter, "Desired rows marked invalid (never sent).");
  r.declare("callbackd_database_jobs_queued", Type::gauge, "Jobs waiting for the database thread.");
  r.declare("callbackd_https_connections_opened_total", Type::counter, "TLS connections opened to WeChat Pay.");
  r.declare("callbackd_https_connections_reused_total", Type::counter, "Requests sent on a pooled connection.");
  r.declare("callbackd_https_failovers_total", Type::counter, "Requests sent to wechatpay.backup_url.");
  r.declare("callbackd_wechatpay_unreachable", Type::gauge,
            "1 while WeChat Pay cannot be reached and sending is held (one probe per backoff step); reason "
            "unreachable (no connection) or not_wechatpay (something else on the path answers).");
  // Not "callbackd_wechatpay_unreachable_total": Prometheus parsers strip _total from a
  // counter's name, which would then collide with the gauge above.
  r.declare("callbackd_wechatpay_outages_total", Type::counter,
            "Times sending was held: WeChat Pay unreachable (connect, DNS, TLS handshake), or answers that were not "
            "WeChat Pay's from several rows in a row (reason).");
  r.declare("callbackd_wechatpay_probes_failed_total", Type::counter,
            "Probe requests during a hold that could not reach WeChat Pay either.");
  r.declare("callbackd_platform_certificate_expiry_seconds", Type::gauge,
            "Certificate-mode tenants: when each trusted platform certificate expires (Unix time).");
  r.declare("callbackd_platform_certificate_downloads_total", Type::counter,
            "GET /v3/certificates by outcome (accepted, not_found, bad_tag, serial_mismatch, outside_validity, "
            "untrusted_chain, signature_invalid, not_signed_by_trusted, malformed_answer, http_NNN, network_error).");
  r.declare("callbackd_reads_total", Type::counter,
            "GET /v3/marketing/favor/callbacks (adoption, drift checks) by outcome: answered, nothing_set, or the "
            "failure's outcome (transient, rate_limited, tenant_error, rejected).");
  r.declare("callbackd_adopted_total", Type::counter,
            "Rows recorded in sync without a POST: WeChat Pay already held the desired notify_url (adopt_existing).");
  r.declare("callbackd_drift_detected_total", Type::counter,
            "Drift checks that found a live notify_url other than the applied one (the row becomes drifted).");
  r.set("callbackd_build_info", {{"version", CALLBACKD_VERSION}}, 1);
}

Operations::~Operations() {
  *alive_ = false;
  stop();
}

void Operations::start(const engine::Reconciler& reconciler) {
  reconciler_ = &reconciler;
  if (!config_.metrics.listen.empty()) {
    server_ = std::make_unique<MetricsServer>(
        io_, config_.metrics.listen,
        MetricsHandlers{[this] { return render_metrics(); }, [this] { return health(); }, [this] { return ready(); },
                        [this](std::string target) { return status_page(std::move(target)); }});
    logging::info("metrics_listening", {{"address", server_->local_address()}});
  }
  watchdog_ = watchdog_interval();
  if (watchdog_) {
    logging::info("watchdog_enabled", {{"interval_ms", *watchdog_}});
    watchdog_tick();
  }
  const auto now = SteadyClock::now();
  next_status_ = now + kStatusEvery;
  next_queue_query_ = now;
  tick();
}

void Operations::stop() {
  tick_timer_.cancel();
  watchdog_timer_.cancel();
  if (server_) server_->close();
}

// The watchdog ping comes from a timer on the event loop itself: if the loop hangs, the pings
// stop and systemd restarts the daemon.
void Operations::watchdog_tick() {
  sd_notify("WATCHDOG=1");
  // Half the interval, as sd_watchdog_enabled(3) advises; a floor keeps a nonsense value
  // (WATCHDOG_USEC=1) from spinning the loop.
  watchdog_timer_.expires_after(std::max<std::chrono::microseconds>(*watchdog_ / 2, milliseconds{20}));
  std::weak_ptr<bool> alive = alive_;
  watchdog_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || alive.expired() || !*alive.lock()) return;
    watchdog_tick();
  });
}

void Operations::tick() {
  const auto now = SteadyClock::now();
  heartbeat_ = now;
  flush_log_repeats();
  if (now >= next_queue_query_) {
    next_queue_query_ = now + kQueueQueryEvery;
    query_queues();
  }
  if (now >= next_fold_ && !stopping_) {
    next_fold_ = now + kFoldEvery;
    fold_row_counts();
  }
  if (now >= next_status_ && ready_sent_ && !stopping_) {
    next_status_ = now + kStatusEvery;
    sd_notify("STATUS=" + status_line());
  }
  tick_timer_.expires_after(kTick);
  std::weak_ptr<bool> alive = alive_;
  tick_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || alive.expired() || !*alive.lock()) return;
    tick();
  });
}

void Operations::query_queues() {
  if (queue_query_in_flight_) return;  // the database is slow: one query at a time
  queue_query_in_flight_ = true;
  std::weak_ptr<bool> alive = alive_;
  db_.post([this, alive](engine::Store& store) {
    std::vector<reconcile::TenantQueue> queues;
    std::string error;
    try {
      queues = store.queue_ages();
    } catch (const std::exception& e) {
      error = e.what();
    }
    asio::post(io_, [this, alive, queues = std::move(queues), error] {
      if (alive.expired() || !*alive.lock()) return;
      queue_query_in_flight_ = false;
      if (!error.empty()) {
        database_error_ = error;
        return;
      }
      database_error_.clear();
      database_ok_at_ = SteadyClock::now();
      queues_.clear();
      for (const auto& q : queues) queues_[q.tenant_id] = Queue{q.queued, q.held, q.oldest_pending_change};
    });
  });
}

void Operations::fold_row_counts() {
  if (fold_in_flight_) return;
  fold_in_flight_ = true;
  // On the status page's thread and connection, never the reconciler's: a fold of a bulk
  // load's changes delays at most a page load, never a claim or a record.
  page_db_.call_then(
      io_, alive_, [](engine::Store& store) { return store.fold_row_state_changes(kFoldBatch); },
      [this](const Result<int, DatabaseError>& folded) {
        fold_in_flight_ = false;
        if (!folded) {
          // Counts stay exact without folds (their readers recompute the unfolded rows), only
          // slower; said once per distinct error, not every 2 s of an outage.
          if (folded.error().what() != fold_error_) {
            fold_error_ = folded.error().what();
            logging::warn("row_counts_fold_failed",
                          {{"error", fold_error_}, {"note", "the row counts stay exact; reading them costs more"}});
          }
          return;
        }
        fold_error_.clear();
        if (folded.value() == kFoldBatch && !stopping_) fold_row_counts();
      });
}

void Operations::tenants_loaded() {
  tenants_loaded_ = true;
  if (ready_sent_ || stopping_) return;
  ready_sent_ = true;
  // Config, database, schema version and every tenant's keys were checked (a tenant whose
  // keys failed is paused, which STATUS and the metrics show).
  sd_notify("READY=1\nSTATUS=" + status_line());
  logging::info("ready", {{"status", status_line()}});
}

void Operations::attempt_finished(const engine::AttemptObserved& a) {
  registry_.add("callbackd_requests_total", {{"tenant", a.tenant_id}, {"outcome", a.outcome}});
  if (!a.error_code.empty())
    registry_.add("callbackd_request_errors_total", {{"tenant", a.tenant_id}, {"code", a.error_code}});
  if (a.latency_ms)
    registry_.observe("callbackd_request_duration_seconds", tenant_label(a.tenant_id), *a.latency_ms / 1000.0);
}

void Operations::reloading() { sd_notify(reloading_message()); }

void Operations::reloaded(const Config& config) {
  // metrics.listen is bound once, at start (a restart moves it).
  if (config.metrics.listen != config_.metrics.listen)
    logging::warn("reload_partial", {{"key", "metrics.listen"}, {"note", "takes effect after a restart"}});
  const std::string listen = config_.metrics.listen;
  config_ = config;
  config_.metrics.listen = listen;
  sd_notify("READY=1\nSTATUS=" + status_line());
}

void Operations::stopping() {
  if (stopping_) return;
  stopping_ = true;
  sd_notify("STOPPING=1\nSTATUS=stopping: draining requests in flight");
}

std::string Operations::metrics_address() const { return server_ ? server_->local_address() : ""; }

std::string Operations::status_line() const {
  std::size_t tenants = 0, here = 0, paused = 0, in_flight = 0;
  if (reconciler_) {
    for (const auto& t : reconciler_->snapshot()) {
      ++tenants;
      here += t.sends_here;
      paused += t.mode != TenantMode::apply || t.paused_by_error;
      in_flight += static_cast<std::size_t>(t.in_flight);
    }
  }
  long long pending = 0;
  for (const auto& [id, q] : queues_) pending += q.queued;
  // "sent here" only when it differs: other instances hold leases, or keys are still loading.
  std::string s = std::to_string(tenants) + " tenants" +
                  (here == tenants ? std::string() : " (" + std::to_string(here) + " sent here)") + ", " +
                  std::to_string(pending) + " pending, " + std::to_string(paused) + " paused, " +
                  std::to_string(in_flight) + " in flight";
  if (!database_error_.empty()) s += "; database unreachable";
  return s;
}

Probe Operations::health() const {
  const auto age = SteadyClock::now() - heartbeat_;
  if (age > kHeartbeatStale)
    return {false,
            "event loop heartbeat is " + std::to_string(std::chrono::duration_cast<seconds>(age).count()) + " s old"};
  return {true, "event loop alive"};
}

Probe Operations::ready() const {
  if (stopping_) return {false, "stopping"};
  if (!tenants_loaded_) return {false, "tenants and keys not loaded yet"};
  if (!database_ok_at_ || SteadyClock::now() - *database_ok_at_ > kDatabaseFresh)
    return {false, "database unreachable" + (database_error_.empty() ? std::string() : ": " + database_error_)};
  return {true, status_line()};
}

void Operations::refresh_gauges() {
  auto& r = registry_;
  for (const char* name :
       {"callbackd_pending_rows", "callbackd_held_rows", "callbackd_oldest_pending_change_seconds",
        "callbackd_tenant_paused", "callbackd_tenant_rate_per_minute", "callbackd_tenant_throttled",
        "callbackd_in_flight", "callbackd_buffered_rows", "callbackd_platform_certificate_expiry_seconds"})
    r.clear(name);
  std::size_t tenants = 0, paused = 0;
  if (reconciler_) {
    for (const auto& t : reconciler_->snapshot()) {
      ++tenants;
      const auto l = tenant_label(t.tenant_id);
      const char* reason = t.paused_by_error               ? "error"
                           : t.mode == TenantMode::paused  ? "mode_paused"
                           : t.mode == TenantMode::observe ? "mode_observe"
                                                           : nullptr;
      paused += reason != nullptr;
      r.set("callbackd_tenant_paused", {{"tenant", t.tenant_id}, {"reason", reason ? reason : "none"}}, reason ? 1 : 0);
      r.set("callbackd_tenant_rate_per_minute", l, t.effective_rate_per_minute);
      r.set("callbackd_tenant_throttled", l, t.throttled ? 1 : 0);
      r.set("callbackd_in_flight", l, t.in_flight);
      r.set("callbackd_buffered_rows", l, static_cast<double>(t.due_rows));
      const auto q = queues_.find(t.tenant_id);
      r.set("callbackd_pending_rows", l, q == queues_.end() ? 0 : static_cast<double>(q->second.queued));
      r.set("callbackd_held_rows", l, q == queues_.end() ? 0 : static_cast<double>(q->second.held));
      r.set("callbackd_oldest_pending_change_seconds", l,
            q == queues_.end() || !q->second.oldest ? 0 : static_cast<double>(q->second.oldest->count()) / 1000.0);
    }
    const auto& stats = reconciler_->stats();
    r.set_total("callbackd_records_written_total", kNone, static_cast<double>(stats.recorded));
    r.set_total("callbackd_invalid_rows_total", kNone, static_cast<double>(stats.invalid));
    // One series per reason (connection failed; answered, but not by WeChat Pay), both always
    // served so that an alert or a rate() sees a 0 before the first hold.
    for (const auto reason :
         {reconcile::EndpointHoldReason::unreachable, reconcile::EndpointHoldReason::not_wechatpay}) {
      const std::string name(reconcile::endpoint_hold_reason_name(reason));
      const bool held = reconciler_->endpoint_held() && reconciler_->endpoint_hold_reason() == reason;
      r.set("callbackd_wechatpay_unreachable", {{"reason", name}}, held ? 1 : 0);
      const auto n = stats.endpoint_holds_by_reason.find(name);
      r.set_total("callbackd_wechatpay_outages_total", {{"reason", name}},
                  n == stats.endpoint_holds_by_reason.end() ? 0.0 : static_cast<double>(n->second));
    }
    r.set_total("callbackd_wechatpay_probes_failed_total", kNone, static_cast<double>(stats.endpoint_probes_failed));
    for (const auto& c : reconciler_->platform_certificates())
      r.set("callbackd_platform_certificate_expiry_seconds", {{"tenant", c.tenant_id}, {"serial", c.serial}},
            static_cast<double>(
                std::chrono::duration_cast<std::chrono::seconds>(c.expires_at.time_since_epoch()).count()));
    for (const auto& [outcome, n] : stats.certificate_downloads)
      r.set_total("callbackd_platform_certificate_downloads_total", {{"outcome", outcome}}, static_cast<double>(n));
    // Served from the start, so that rate() sees a 0 before the first read.
    for (const char* outcome : {"answered", "nothing_set"})
      if (!stats.reads.count(outcome)) r.set_total("callbackd_reads_total", {{"outcome", outcome}}, 0.0);
    for (const auto& [outcome, n] : stats.reads)
      r.set_total("callbackd_reads_total", {{"outcome", outcome}}, static_cast<double>(n));
    r.set_total("callbackd_adopted_total", kNone, static_cast<double>(stats.adopted));
    r.set_total("callbackd_drift_detected_total", kNone, static_cast<double>(stats.drift_detected));
  }
  r.set("callbackd_tenants", kNone, static_cast<double>(tenants));
  r.set("callbackd_paused_tenants", kNone, static_cast<double>(paused));
  r.set("callbackd_ready", kNone, ready().ok ? 1 : 0);
  r.set("callbackd_database_up", kNone, database_ok_at_ && database_error_.empty() ? 1 : 0);
  r.set("callbackd_database_jobs_queued", kNone, static_cast<double>(db_.queued()));
  const auto http = client_.stats();
  r.set_total("callbackd_https_connections_opened_total", kNone, static_cast<double>(http.connections_opened));
  r.set_total("callbackd_https_connections_reused_total", kNone, static_cast<double>(http.connections_reused));
  r.set_total("callbackd_https_failovers_total", kNone, static_cast<double>(http.failovers));
}

std::string Operations::render_metrics() {
  refresh_gauges();
  return registry_.render();
}

status::Live Operations::live_view() const {
  status::Live live;
  live.instance = instance_;
  live.version = CALLBACKD_VERSION;
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char at[32];
  std::strftime(at, sizeof at, "%Y-%m-%d %H:%M:%SZ", &utc);
  live.generated_at = at;
  if (reconciler_) {
    for (const auto& t : reconciler_->snapshot())
      live.tenants[t.tenant_id] =
          status::LiveTenant{t.effective_rate_per_minute, t.throttled, t.in_flight, t.paused_by_error};
  }
  return live;
}

asio::awaitable<HtmlPage> Operations::status_page(std::string target) {
  const status::Route route = status::parse_route(target);
  if (route.kind != status::Route::Kind::page)
    co_return HtmlPage{route.kind == status::Route::Kind::not_found ? 404 : 400,
                       status::render_error(route, live_view())};
  const std::string key = route.key();
  const auto now = SteadyClock::now();
  auto cached = page_cache_.find(key);
  if (cached == page_cache_.end() || now - cached->second.read_at >= kPageCacheFor) {
    // On the page's own database thread (engine/db_worker.h); this coroutine waits without
    // blocking the io_context. A destroyed Operations (alive_) never resumes it.
    if (page_queries_in_flight_ >= kPageQueriesAtOnce)
      co_return HtmlPage{503,
                         status::render_database_error(
                             route, "busy answering earlier page loads; load the page again in a moment", live_view())};
    // The scans again only once the last ones are older than what they cost allows.
    const auto scanned = scans_cache_.find(key);
    const bool scans = scanned == scans_cache_.end() || !scanned->second.view.scans_took_ms ||
                       now - scanned->second.read_at >=
                           status::scans_reused_for(std::chrono::milliseconds{*scanned->second.view.scans_took_ms});
    const status::Query query{route.page, route.argument, scans};
    ++page_queries_in_flight_;
    // Named, not temporaries in the co_await expression: g++ 12 destroys some temporaries of
    // a co_await full-expression twice.
    std::weak_ptr<const void> owner = alive_;
    auto read = [query](engine::Store& store) { return store.read_status(query); };
    auto answer = co_await page_db_.call(std::move(owner), std::move(read));
    --page_queries_in_flight_;
    if (!answer) co_return HtmlPage{503, status::render_database_error(route, answer.error().what(), live_view())};
    status::DatabaseView view = std::move(answer).value();
    const auto read_at = SteadyClock::now();
    // Bounded: expired entries go first; a flood of distinct pages empties the caches.
    std::erase_if(page_cache_, [&](const auto& e) { return read_at - e.second.read_at >= kPageCacheFor; });
    if (page_cache_.size() >= kPageCacheEntries) page_cache_.clear();
    if (scans_cache_.size() >= kPageCacheEntries) scans_cache_.clear();
    if (view.scans_took_ms) {
      scans_cache_.insert_or_assign(key, CachedView{read_at, view});
    } else if (const auto earlier = scans_cache_.find(key); earlier != scans_cache_.end()) {
      status::carry_scans(view, earlier->second.view,
                          std::chrono::duration_cast<std::chrono::milliseconds>(read_at - earlier->second.read_at));
    }
    cached = page_cache_.insert_or_assign(key, CachedView{read_at, std::move(view)}).first;
  }
  // A tenant page of a tenant that does not exist says so, with 404.
  const bool missing = route.page == status::PageKind::tenant && cached->second.view.tenants.empty();
  co_return HtmlPage{missing ? 404 : 200, status::render_page(route, cached->second.view, live_view())};
}

}  // namespace callbackd::app
