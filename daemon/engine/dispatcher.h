// Sends what the scheduler dispatches: takes the tenant's next buffered row, signs and sends
// it (engine/attempt.h), tells the scheduler how it went (pacer, tenant pause, endpoint hold),
// decides the row's next state (reconcile::decide_after_attempt) and hands the record to the
// batcher. Runs on the io_context; requests are coroutines there.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <memory>
#include <optional>
#include <random>
#include <string>

#include "core/config.h"
#include "core/reconcile/row_decision.h"
#include "core/reconcile/scheduler.h"
#include "core/reconcile/work.h"
#include "core/wechatpay/outcome.h"
#include "engine/clock.h"
#include "http/https_client.h"

namespace callbackd::engine {

class CertificateKeeper;
class RecordBatcher;
class TenantRegistry;
struct ReconcilerOptions;
struct ReconcilerStats;

class Dispatcher {
 public:
  // `config` (credentials_dir) and `policy` are the reconciler's, read at each use. `wake` is
  // called when a request finished.
  Dispatcher(boost::asio::io_context& io, Clock& clock, http::Sender& client, std::weak_ptr<const void> lifetime,
             const Config& config, const reconcile::RowPolicy& policy, const ReconcilerOptions& options,
             TenantRegistry& tenants, CertificateKeeper& certificates, reconcile::FairScheduler& scheduler,
             RecordBatcher& records, ReconcilerStats& stats, std::mt19937_64& random, std::function<void()> wake);

  // Sends the dispatched tenant's next buffered row (the scheduler dispatches only tenants
  // with buffered rows).
  void dispatch(const reconcile::Dispatch& d, reconcile::Instant now);
  // Requests not yet finished, over every tenant.
  std::size_t in_flight() const;

 private:
  boost::asio::awaitable<void> attempt(std::string tenant_id, reconcile::WorkItem item, reconcile::Dispatch dispatch,
                                       reconcile::Instant sent_at);
  void finish(const std::string& tenant_id, const reconcile::WorkItem& item, const reconcile::Dispatch& dispatch,
              reconcile::Instant sent_at, const wechatpay::Outcome& outcome, std::optional<int> latency_ms,
              reconcile::EndpointReach reach);
  // After a completion changed the endpoint hold: one log line per change (not per row), and
  // while held, claimed rows are given back (hold_buffers).
  void on_endpoint_change(bool was_held, int failed_probes_before, const wechatpay::Outcome& outcome,
                          reconcile::Instant now);
  void hold_buffers();

  boost::asio::io_context& io_;
  Clock& clock_;
  http::Sender& client_;
  std::weak_ptr<const void> lifetime_;
  const Config& config_;
  const reconcile::RowPolicy& policy_;
  const ReconcilerOptions& options_;
  TenantRegistry& tenants_;
  CertificateKeeper& certificates_;
  reconcile::FairScheduler& scheduler_;
  RecordBatcher& records_;
  ReconcilerStats& stats_;
  std::mt19937_64& random_;
  std::function<void()> wake_;
};

}  // namespace callbackd::engine
