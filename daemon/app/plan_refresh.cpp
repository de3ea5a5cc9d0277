#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include "app/plan_refresh.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "app/report_text.h"
#include "core/reconcile/live_state.h"
#include "core/tenant.h"
#include "engine/attempt.h"
#include "http/https_client.h"

namespace callbackd::app {

namespace asio = boost::asio;

namespace {

// A 429 makes the pacer slower and the row is read again, at most this many times.
constexpr int kMaxReadTries = 5;

}  // namespace

RefreshTotals refresh_live_values(const Config& config, const std::vector<pg::TenantOverview>& tenants,
                                  const std::vector<pg::Inspector::AppliedRow>& rows, std::ostream& out,
                                  bool show_progress) {
  asio::io_context io;
  http::HttpsClient client(io, config.wechatpay);
  std::map<std::string, std::shared_ptr<const TenantCredentials>> credentials;
  std::map<std::string, std::string> key_problems;
  for (const auto& t : tenants) {
    auto loaded = load_tenant_credentials(t.tenant, config.credentials_dir);
    if (loaded)
      credentials[t.tenant.tenant_id] = std::make_shared<const TenantCredentials>(std::move(loaded).value());
    else
      key_problems[t.tenant.tenant_id] = loaded.error().empty() ? "unknown" : loaded.error().front().to_string();
  }
  reconcile::ReadPacer pacer(config.wechatpay.read_rate_per_second);
  RefreshTotals totals;
  std::vector<std::string> lines(rows.size());
  std::size_t next = 0;
  std::size_t done = 0;

  auto one_row = [&](std::size_t i) -> asio::awaitable<void> {
    const auto& row = rows[i];
    std::ostringstream line;
    const auto c = credentials.find(row.tenant_id);
    if (c == credentials.end()) {
      const auto problem = key_problems.find(row.tenant_id);
      line << "  unread  mchid=" << printable(row.sub_mchid) << " tenant=" << printable(row.tenant_id)
           << " (the tenant's keys do not load: "
           << printable(problem == key_problems.end() ? "no such tenant" : problem->second) << ")";
      ++totals.unread;
      lines[i] = line.str();
      co_return;
    }
    asio::steady_timer timer(io);
    for (int tries = 1;; ++tries) {
      for (auto now = reconcile::Clock::now(); !pacer.try_acquire(now); now = reconcile::Clock::now()) {
        timer.expires_at(pacer.next_slot(now));
        co_await timer.async_wait(asio::use_awaitable);
      }
      const auto sent_at = reconcile::Clock::now();
      const auto unix_seconds =
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      auto request = engine::signed_favor_callbacks_read(*c->second, row.sub_mchid, unix_seconds);
      wechatpay::ReadOutcome read;
      if (!request) {
        read.outcome.error_code = "SIGNING_FAILED";
        read.outcome.error_message = request.error();
      } else {
        auto response = co_await client.send(std::move(request).value());
        read = engine::classify_read_response(*c->second, response, std::chrono::system_clock::now(), row.sub_mchid);
      }
      if (read.outcome.kind == wechatpay::OutcomeKind::rate_limited && tries < kMaxReadTries) {
        pacer.on_rate_limited(reconcile::Clock::now(), sent_at, read.outcome.retry_after);
        continue;
      }
      if (!read.answered()) {
        line << "  unread  mchid=" << printable(row.sub_mchid) << " tenant=" << printable(row.tenant_id)
             << " outcome=" << wechatpay::outcome_name(read.outcome.kind)
             << " code=" << printable(read.outcome.error_code.empty() ? "-" : read.outcome.error_code)
             << " message=" << printable(read.outcome.error_message);
        ++totals.unread;
      } else {
        ++totals.read;
        if (reconcile::is_drift(row.applied_notify_url, *read.live_notify_url)) {
          ++totals.drift;
          line << "  drift   mchid=" << printable(row.sub_mchid) << " tenant=" << printable(row.tenant_id)
               << " applied_notify_url=" << printable(row.applied_notify_url) << " live_notify_url="
               << (read.live_notify_url->empty() ? std::string("none") : printable(*read.live_notify_url))
               << " request_id=" << printable(read.outcome.request_id.value_or("-"));
        }
      }
      lines[i] = line.str();
      co_return;
    }
  };
  // As many readers as the daemon lets read at once (half the connection pool); the pacer sets
  // the rate.
  const std::size_t workers = std::max<std::size_t>(1, config.wechatpay.max_connections_per_host / 2);
  auto worker = [&]() -> asio::awaitable<void> {
    while (next < rows.size()) {
      co_await one_row(next++);
      ++done;
      if (show_progress && (done % 50 == 0 || done == rows.size()))
        std::cerr << "\rplan --refresh: read " << done << " of " << rows.size() << std::flush;
    }
  };
  for (std::size_t w = 0; w < workers; ++w) asio::co_spawn(io, worker(), asio::detached);
  io.run();
  if (show_progress && !rows.empty()) std::cerr << "\n";
  for (const auto& l : lines)
    if (!l.empty()) out << l << "\n";
  return totals;
}

}  // namespace callbackd::app
