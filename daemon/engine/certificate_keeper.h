// Platform certificates of certificate-mode tenants (migrations/0009; docs/runbook.md,
// "Platform certificates"): downloaded with GET /v3/certificates, judged by the pure core
// (core/wechatpay/platform_certificates.h), stored through the Store and handed to the tenant
// as new credentials. Two triggers:
//  - at once, when a 2xx names a Wechatpay-Serial the tenant does not know (the dispatcher
//    asks, then verifies that response again): the first use of a tenant that has none yet,
//    and a rotation;
//  - on schedule, every 12 h per tenant from its last download, spread across tenants
//    (core/reconcile/certificate_refresh.h), so that a certificate WeChat Pay lists ahead of
//    using it is trusted while the old one still signs.
// One download per tenant at a time: whoever asks while one is out waits for its verdict.
// Only the instance that owns the tenant downloads on schedule; the others read what it
// stored (the table's NOTIFY re-reads the tenants). Runs on the io_context.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/reconcile/time.h"
#include "core/wechatpay/platform_certificates.h"
#include "engine/clock.h"
#include "engine/db_worker.h"
#include "http/https_client.h"

namespace callbackd::engine {

class TenantRegistry;
struct TenantRuntime;
struct ReconcilerStats;

class CertificateKeeper {
 public:
  // `config` is the reconciler's (wechatpay.platform_ca_file is read once, here: a missing or
  // broken file was refused at start-up by check_platform_ca). `wake` is called when a
  // tenant's credentials changed.
  CertificateKeeper(boost::asio::io_context& io, Clock& clock, http::Sender& client, DbWorker& db,
                    std::weak_ptr<const void> lifetime, const Config& config, TenantRegistry& tenants,
                    ReconcilerStats& stats, std::function<void()> wake);

  // Downloads the tenant's certificates now (or waits for the download already out) and
  // applies an accepted answer; a refusal found on schedule pauses the tenant, one asked for
  // by the dispatcher is its outcome to record. `why` goes to the log.
  boost::asio::awaitable<wechatpay::DownloadVerdict> refresh(std::string tenant_id, std::string why);

  // The run loop's turn: starts the scheduled downloads that are due. Returns the instant the
  // next one is due, if any.
  std::optional<reconcile::Instant> on_turn(reconcile::Instant now);

 private:
  struct Flight {
    explicit Flight(boost::asio::io_context& io) : done(io) {}
    boost::asio::steady_timer done;  // cancelled when the verdict is in
    std::optional<wechatpay::DownloadVerdict> verdict;
  };
  boost::asio::awaitable<wechatpay::DownloadVerdict> download(const std::string& tenant_id);
  void accept(TenantRuntime& t, const wechatpay::DownloadVerdict& verdict);
  // The next scheduled download of `t`, from its newest stored certificate's fetch time.
  reconcile::Instant scheduled_at(const TenantRuntime& t, reconcile::Instant now) const;

  boost::asio::io_context& io_;
  Clock& clock_;
  http::Sender& client_;
  DbWorker& db_;
  std::weak_ptr<const void> lifetime_;
  const Config& config_;
  TenantRegistry& tenants_;
  ReconcilerStats& stats_;
  std::function<void()> wake_;
  std::optional<wechatpay::PlatformCa> platform_ca_;
  // wechatpay.platform_ca_file is set but could not be loaded here: every download is refused.
  std::optional<std::string> platform_ca_error_;
  std::map<std::string, std::shared_ptr<Flight>> flights_;
  // A refusal stands for a short while, for the same credentials: the requests that were in
  // flight when it came (up to max_in_flight of them) take it instead of downloading again
  // each; keys changed by the operator (a new TenantCredentials) download at once.
  static constexpr std::chrono::seconds kRefusalStands{10};
  struct Refusal {
    reconcile::Instant at;
    std::shared_ptr<const TenantCredentials> credentials;
    wechatpay::DownloadVerdict verdict;
  };
  std::map<std::string, Refusal> refusals_;
};

}  // namespace callbackd::engine
