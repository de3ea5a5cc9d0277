#include "engine_harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace callbackd::engine_test {

namespace fs = std::filesystem;

namespace {

// Every tenant signs with the same test key and verifies with the platform key's public half:
// one copy of each in a private directory, mode 0600 as the daemon demands of a private key.
std::string make_credentials_dir() {
  std::string tmpl = (fs::temp_directory_path() / "callbackd-engine.XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  for (const auto& [from, to] : {std::pair{"second_rsa2048.pem", "merchant_key.pem"},
                                 std::pair{"go_test_public_key.pem", "wechatpay_public_key.pem"}}) {
    fs::copy_file(fs::path(CALLBACKD_TEST_DATA) / "keys" / from, fs::path(tmpl) / to);
    ::chmod((fs::path(tmpl) / to).c_str(), 0600);
  }
  return tmpl;
}

}  // namespace

Config Engine::default_config() {
  Config c;
  c.metrics.listen.clear();
  return c;
}

std::string Engine::tenant_id(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "t%04d", i);
  return buf;
}

std::string Engine::sub_mchid(int tenant, int row) {
  return std::to_string(1'600'000'000LL + static_cast<long long>(tenant) * 10'000 + row);
}

Engine::Engine(int tenants, int rate_per_minute, Config cfg)
    // A fixed wall time: WeChat Pay's signatures carry it, and each run is the same.
    : clock(std::chrono::system_clock::time_point{std::chrono::seconds{1'796'500'000}}),
      store(clock, "sim-host:1"),
      config(std::move(cfg)),
      credentials_dir_(make_credentials_dir()) {
  config.credentials_dir = credentials_dir_;
  for (int i = 0; i < tenants; ++i) {
    TenantRow row;
    row.tenant_id = tenant_id(i);
    row.caller_mchid = std::to_string(1'900'000'000LL + i);
    row.merchant_serial_no = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
    row.private_key_path = "merchant_key.pem";
    row.wechatpay_key_id = kPlatformKeyId;
    row.wechatpay_key_path = "wechatpay_public_key.pem";
    row.rate_per_minute = rate_per_minute;
    row.max_in_flight = 4;
    store.add_tenant(std::move(row));
  }
  engine::ReconcilerOptions options;
  options.instance = "sim-host:1";
  options.random_seed = 14;  // reproducible runs: the same jitter every time
  options.on_row_moved = [this](const std::string& tenant_id, reconcile::RowState from, reconcile::RowState to) {
    row_moves.moved(tenant_id, reconcile::row_state_name(from), reconcile::row_state_name(to));
  };
  // Keys load inline, as one event of simulated time each (the daemon loads them on a thread).
  options.run_key_load = [this](std::function<void()> load) {
    if (hold_key_loads)
      held_key_loads.push_back(std::move(load));
    else
      boost::asio::post(io, std::move(load));
  };
  reconciler = std::make_unique<engine::Reconciler>(io, config, clock, wechatpay, db, std::move(options));
}

Engine::~Engine() {
  // A failed test may leave the loop running (or spinning): end it if it ends, never throw.
  if (running_) {
    reconciler->stop();
    driver.max_firings += 100'000;
    driver.run_until([this] { return !running_; }, config.reconciler.shutdown_grace + std::chrono::seconds{30});
  }
  reconciler.reset();
  std::error_code ec;
  fs::remove_all(credentials_dir_, ec);
}

void Engine::certificate_mode(int tenant) {
  constexpr std::string_view kKey = "0123456789abcdefghijABCDEFGHIJ-_";
  const auto path = fs::path(credentials_dir_) / "apiv3.key";
  std::ofstream(path) << kKey;
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  TenantRow* row = store.tenant(tenant_id(tenant));
  row->wechatpay_key_id.clear();
  row->wechatpay_key_path.clear();
  row->apiv3_key_path = "apiv3.key";
  wechatpay.certificate_mode = wechatpay::parse_apiv3_key(kKey, "apiv3.key").value();
}

void Engine::add_rows(int tenant, int rows, bool notify_now) {
  for (int r = 0; r < rows; ++r) store.set_desired(sub_mchid(tenant, r), tenant_id(tenant), std::string(kNotifyUrl));
  if (notify_now) notify(tenant_id(tenant));
}

void Engine::notify(const std::string& id) {
  ++notifications_;
  if (running_) reconciler->on_notification("callbackd_desired", id);
}

void Engine::start() {
  started_at_ = clock.now();
  running_ = true;
  boost::asio::co_spawn(io, reconciler->run(), [this](std::exception_ptr e) {
    running_ = false;
    if (e) std::rethrow_exception(e);
  });
}

void Engine::release_key_loads(std::size_t how_many) {
  if (how_many >= held_key_loads.size()) hold_key_loads = false;
  how_many = std::min(how_many, held_key_loads.size());
  for (std::size_t i = 0; i < how_many; ++i) boost::asio::post(io, std::move(held_key_loads[i]));
  held_key_loads.erase(held_key_loads.begin(), held_key_loads.begin() + static_cast<std::ptrdiff_t>(how_many));
}

bool Engine::run_for(Duration d) { return driver.run_for(d); }

bool Engine::run_until(const std::function<bool()>& done, Duration limit) { return driver.run_until(done, limit); }

void Engine::stop() {
  reconciler->stop();
  // Drain: shutdown_grace for requests in flight, then the last records.
  driver.run_until([this] { return !running_; }, config.reconciler.shutdown_grace + std::chrono::seconds{30});
  if (running_) throw std::runtime_error("the run loop did not end after stop()");
}

Events Engine::events() const {
  Events e;
  const Duration t = elapsed();
  e.polls = static_cast<std::uint64_t>(t / config.reconciler.poll_interval) + 1;
  e.heartbeats = static_cast<std::uint64_t>(t / std::chrono::seconds{2}) + 1;
  e.requests = wechatpay.received().size();
  e.store_calls = store.calls();
  e.notifications = notifications_;
  return e;
}

std::string Engine::figures() const {
  const Events e = events();
  std::ostringstream s;
  s << "simulated " << std::chrono::duration_cast<std::chrono::seconds>(elapsed()).count() << " s: loop_turns "
    << turns() << ", requests " << e.requests << ", store calls " << e.store_calls << ", statements "
    << store.statements_executed() << ", polls " << e.polls << ", heartbeats " << e.heartbeats << ", notifications "
    << e.notifications << "; timer deadlines fired " << clock.counts.deadlines_fired << ", passed deadlines fired "
    << clock.counts.passed_deadlines_fired << ", wake-ups " << clock.counts.wakes
    << (driver.gave_up ? " (GAVE UP: spinning)" : "") << "; store calls by kind:";
  for (const auto& [kind, n] : store.calls_by_kind()) s << " " << kind << " " << n;
  return s.str();
}

}  // namespace callbackd::engine_test
