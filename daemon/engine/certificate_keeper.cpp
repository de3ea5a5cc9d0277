#include "engine/certificate_keeper.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>

#include "core/logging/event.h"
#include "core/reconcile/certificate_refresh.h"
#include "core/wechatpay/signing.h"
#include "engine/reconciler.h"
#include "engine/tenant_registry.h"

namespace callbackd::engine {

namespace asio = boost::asio;
using logging::log_id;
using reconcile::Instant;
using std::chrono::milliseconds;
using Verdict = wechatpay::DownloadVerdict;

namespace {

// The key set verified with after `certificates` were accepted: the old keys and the new ones
// (an old certificate keeps verifying until it expires; WeChat Pay may still sign with it).
wechatpay::KeySet with_certificates(wechatpay::KeySet keys, const std::vector<wechatpay::PlatformCertificate>& certs) {
  for (const auto& c : certs) static_cast<void>(keys.add(c.serial, c.key));  // serials checked by accept_download
  return keys;
}

// What a download is judged against: the platform certificates the tenant trusts, not the
// public keys an operator may have added beside them (tenant_wechatpay_keys), which never
// sign a /v3/certificates answer.
wechatpay::KeySet trusted_certificates(const wechatpay::KeySet& keys) {
  wechatpay::KeySet certificates;
  for (const auto& id : keys.key_ids())
    if (const auto* key = keys.find(id); key && key->certificate()) static_cast<void>(certificates.add(id, *key));
  return certificates;
}

Verdict failed(Verdict::Kind kind, std::string code, std::string reason, std::string outcome) {
  Verdict v;
  v.kind = kind;
  v.code = std::move(code);
  v.reason = std::move(reason);
  v.outcome = std::move(outcome);
  return v;
}

}  // namespace

CertificateKeeper::CertificateKeeper(asio::io_context& io, Clock& clock, http::Sender& client, DbWorker& db,
                                     std::weak_ptr<const void> lifetime, const Config& config, TenantRegistry& tenants,
                                     ReconcilerStats& stats, std::function<void()> wake)
    : io_(io),
      clock_(clock),
      client_(client),
      db_(db),
      lifetime_(std::move(lifetime)),
      config_(config),
      tenants_(tenants),
      stats_(stats),
      wake_(std::move(wake)) {
  if (config.wechatpay.platform_ca_file) {
    // Checked at start-up (check-config and run refuse a missing or broken file), so a failure
    // here is a file changed since: logged, and downloads are then refused (untrusted_chain)
    // rather than trusted without the chain the operator asked for.
    auto ca = wechatpay::load_platform_ca_file(*config.wechatpay.platform_ca_file);
    if (ca) {
      platform_ca_ = std::move(ca).value();
    } else {
      platform_ca_error_ = ca.error().message;
      logging::error("platform_ca_unreadable", {{"error", *platform_ca_error_}});
    }
  }
}

asio::awaitable<Verdict> CertificateKeeper::refresh(std::string tenant_id, std::string why) {
  if (auto it = flights_.find(tenant_id); it != flights_.end()) {
    const std::shared_ptr<Flight> flight = it->second;
    boost::system::error_code ignored;
    if (!flight->verdict) co_await flight->done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    co_return *flight->verdict;
  }
  if (auto it = refusals_.find(tenant_id); it != refusals_.end()) {
    const TenantRuntime* t = tenants_.find(tenant_id);
    if (t && t->credentials == it->second.credentials && clock_.now() - it->second.at < kRefusalStands)
      co_return it->second.verdict;
    refusals_.erase(it);
  }
  auto flight = std::make_shared<Flight>(io_);
  flight->done.expires_at(asio::steady_timer::time_point::max());
  flights_.emplace(tenant_id, flight);
  const std::weak_ptr<const void> alive = lifetime_;
  logging::info("platform_certificates_download", {{"tenant", log_id(tenant_id)}, {"why", why}});
  Verdict verdict = co_await download(tenant_id);
  if (alive.expired()) co_return verdict;
  ++stats_.certificate_downloads[verdict.outcome];
  if (TenantRuntime* t = tenants_.find(tenant_id)) {
    t->certificates_due.reset();  // counted again from this download (on_turn)
    if (verdict.kind == Verdict::Kind::accepted) {
      accept(*t, verdict);
    } else {
      if (verdict.kind == Verdict::Kind::refused || verdict.kind == Verdict::Kind::no_platform_certificate)
        refusals_.insert_or_assign(tenant_id, Refusal{clock_.now(), t->credentials, verdict});
      logging::warn("platform_certificates_not_updated", {{"tenant", log_id(tenant_id)},
                                                          {"code", verdict.code},
                                                          {"outcome", verdict.outcome},
                                                          {"reason", verdict.reason}});
    }
  }
  flight->verdict = verdict;
  flights_.erase(tenant_id);
  flight->done.cancel();
  co_return verdict;
}

asio::awaitable<Verdict> CertificateKeeper::download(const std::string& tenant_id) {
  TenantRuntime* t = tenants_.find(tenant_id);
  if (!t || !t->credentials || !t->credentials->apiv3_key)
    co_return failed(Verdict::Kind::transient, "CREDENTIALS_NOT_LOADED",
                     "the tenant's keys are not loaded (or it is not in certificate mode)", "not_loaded");
  // Kept alive across the request: the tenant may be re-keyed or removed meanwhile.
  const std::shared_ptr<const TenantCredentials> credentials = t->credentials;
  const auto unix_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.wall_now().time_since_epoch()).count();
  http::HttpRequest request;
  request.method = "GET";
  request.target = std::string(wechatpay::kCertificatesPath);
  auto nonce = wechatpay::make_nonce();
  auto auth = nonce ? wechatpay::authorization_header(credentials->merchant, request.method, request.target, "",
                                                      unix_seconds, nonce.value())
                    : Result<std::string, wechatpay::CryptoError>(nonce.error());
  if (!auth) co_return failed(Verdict::Kind::transient, "SIGNING_FAILED", auth.error().message, "signing_failed");
  // The operator asked for a chain check we cannot make: refuse rather than trust without it.
  if (platform_ca_error_)
    co_return failed(Verdict::Kind::refused, "PLATFORM_CERTIFICATE_REFUSED",
                     "wechatpay.platform_ca_file could not be loaded (" + *platform_ca_error_ +
                         "); fix the file and restart callbackd",
                     "untrusted_chain");
  request.authorization = std::move(auth).value();
  // The certificate we trust: WeChat Pay signs the answer with it while it is valid, so a
  // rotation's new certificate arrives under a signature we can already check.
  if (!credentials->wechatpay_serial.empty()) request.wechatpay_serial = credentials->wechatpay_serial;
  auto response = co_await client_.send(std::move(request));
  if (!response)
    co_return failed(Verdict::Kind::transient, "NETWORK_ERROR",
                     "GET /v3/certificates failed: " + response.error().message, "network_error");
  const auto& r = response.value();
  co_return wechatpay::judge_certificates_download(r.status, r.body, http::response_headers(r), *credentials->apiv3_key,
                                                   trusted_certificates(credentials->response_keys), clock_.wall_now(),
                                                   platform_ca_ ? &*platform_ca_ : nullptr);
}

void CertificateKeeper::accept(TenantRuntime& t, const Verdict& verdict) {
  const auto fetched = clock_.wall_now();
  std::vector<TenantRow::StoredCertificate> stored;
  std::vector<std::string> added;
  for (const auto& c : verdict.certificates) {
    stored.push_back({c.serial, c.pem, c.effective, c.expiry, fetched});
    auto& mine = t.row.platform_certificates;
    auto it = std::find_if(mine.begin(), mine.end(), [&](const auto& s) { return s.serial == c.serial; });
    if (it == mine.end()) {
      mine.push_back(stored.back());
      added.push_back(c.serial);
    } else {
      it->fetched_at = fetched;
    }
  }
  // As the database orders them (tenant_platform_certificates.sql), so that the re-read its
  // NOTIFY causes finds the row unchanged and keeps these credentials (tenant_registry.cpp).
  std::sort(t.row.platform_certificates.begin(), t.row.platform_certificates.end(),
            [](const auto& a, const auto& b) { return a.serial < b.serial; });
  if (t.credentials && !added.empty()) {
    auto updated = std::make_shared<TenantCredentials>(*t.credentials);
    updated->response_keys = with_certificates(updated->response_keys, verdict.certificates);
    // Ask for the newest (the one WeChat Pay moves to).
    const auto newest = std::max_element(verdict.certificates.begin(), verdict.certificates.end(),
                                         [](const auto& a, const auto& b) { return a.effective < b.effective; });
    updated->wechatpay_serial = newest->serial;
    t.credentials = std::move(updated);
  }
  std::string serials;
  for (const auto& c : verdict.certificates) serials += (serials.empty() ? "" : ",") + c.serial;
  logging::info("platform_certificates_trusted",
                {{"tenant", log_id(t.id())}, {"serials", serials}, {"new", static_cast<int>(added.size())}});
  const std::string tenant_id = t.id();
  db_.call_then(
      io_, lifetime_,
      [tenant_id, stored = std::move(stored)](Store& store) { store.store_platform_certificates(tenant_id, stored); },
      log_if_failed(logging::Level::error, "platform_certificates_store_failed",
                    {{"tenant", log_id(tenant_id)}, {"note", "kept in memory; the next refresh stores them again"}}));
  wake_();
}

Instant CertificateKeeper::scheduled_at(const TenantRuntime& t, Instant now) const {
  std::chrono::system_clock::time_point last{};
  for (const auto& c : t.row.platform_certificates) last = std::max(last, c.fetched_at);
  const auto since = std::chrono::duration_cast<milliseconds>(clock_.wall_now() - last);
  return now + reconcile::certificate_refresh_wait(since, t.id());
}

std::optional<Instant> CertificateKeeper::on_turn(Instant now) {
  std::optional<Instant> next;
  for (auto& [id, t] : tenants_.all()) {
    // Scheduled only for tenants that have certificates (the first download is asked for by
    // the first response that needs one) and that this instance sends for.
    if (!t->row.certificate_mode() || t->row.platform_certificates.empty() || !t->credentials ||
        !t->credentials->apiv3_key || !t->owned || flights_.count(id)) {
      t->certificates_due.reset();
      continue;
    }
    if (!t->certificates_due) t->certificates_due = scheduled_at(*t, now);
    if (now < *t->certificates_due) {
      if (!next || *t->certificates_due < *next) next = t->certificates_due;
      continue;
    }
    t->certificates_due.reset();
    asio::co_spawn(
        io_,
        [this, tenant_id = id, alive = lifetime_]() -> asio::awaitable<void> {
          const Verdict verdict = co_await refresh(tenant_id, "scheduled");
          if (alive.expired()) co_return;
          // On schedule nobody else records a refusal: the tenant pauses with it, as when a
          // request's outcome pauses it. A transient failure keeps the certificates it has and
          // is tried again at the next turn's schedule.
          if (verdict.kind == Verdict::Kind::refused || verdict.kind == Verdict::Kind::no_platform_certificate)
            tenants_.pause(tenant_id, verdict.code, verdict.reason, true);
        },
        asio::detached);
  }
  return next;
}

}  // namespace callbackd::engine
