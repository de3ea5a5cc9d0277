// What loading tenants' keys costs (issue 14, many tenants): per key, OpenSSL's pairwise check
// (what keys.cpp ran before) against the check it runs now, and where the time goes; then N
// tenants, each with key files of its own, loaded cold, again from the cache (a SIGHUP), and
// on the KeyLoader's thread while the io_context runs a 1 ms ticker: the longest gap between
// two ticks is the longest the network thread was kept from its work.
//
// Usage: bench_keys [tenants]   (default 1000)
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "core/tenant.h"
#include "core/wechatpay/key_cache.h"
#include "core/wechatpay/keys.h"
#include "engine/key_loader.h"

using namespace callbackd;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double thread_cpu_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Milliseconds per call of `op`, the best of three rounds of `n` calls.
double per_call_ms(int n, const std::function<void()>& op) {
  double best = 1e18;
  for (int round = 0; round < 3; ++round) {
    const auto start = Clock::now();
    for (int i = 0; i < n; ++i) op();
    best = std::min(best, ms_since(start) / n);
  }
  return best;
}

EVP_PKEY* decode(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return pkey;
}

}  // namespace

int main(int argc, char** argv) {
  const int tenants = argc > 1 ? std::atoi(argv[1]) : 1000;
  const fs::path data = CALLBACKD_TEST_DATA;
  const std::string merchant_pem = read_file(data / "keys" / "second_rsa2048.pem");
  const std::string wechatpay_pem = read_file(data / "keys" / "go_test_public_key.pem");

  // --- Per key ---------------------------------------------------------------------------
  const double decode_ms = per_call_ms(20, [&] { EVP_PKEY_free(decode(merchant_pem)); });
  EVP_PKEY* pkey = decode(merchant_pem);
  const double pairwise_ms = per_call_ms(5, [&] {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
    if (EVP_PKEY_pairwise_check(ctx) != 1) std::abort();
    EVP_PKEY_CTX_free(ctx);
  });
  const double primes_ms = per_call_ms(5, [&] {
    BIGNUM *p = nullptr, *q = nullptr;
    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, &p);
    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, &q);
    BN_CTX* ctx = BN_CTX_new();
    if (BN_check_prime(p, ctx, nullptr) != 1 || BN_check_prime(q, ctx, nullptr) != 1) std::abort();
    BN_CTX_free(ctx);
    BN_free(p);
    BN_free(q);
  });
  EVP_PKEY_free(pkey);
  const double parse_ms = per_call_ms(20, [&] {
    if (!wechatpay::parse_private_key_pem(merchant_pem, "bench")) std::abort();
  });
  std::printf(
      "per key: PEM decode %.2f ms; before: + EVP_PKEY_pairwise_check %.2f ms (of which proving p, q prime "
      "%.2f ms) = %.2f ms; now: parse_private_key_pem (decode + components + test signature) %.2f ms\n",
      decode_ms, pairwise_ms, primes_ms, decode_ms + pairwise_ms, parse_ms);

  // --- N tenants, each with key files of its own -------------------------------------------
  std::string dir = (fs::temp_directory_path() / "callbackd-bench-keys.XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) return 1;
  std::vector<TenantRow> rows;
  for (int i = 0; i < tenants; ++i) {
    TenantRow row;
    row.tenant_id = "t" + std::to_string(i);
    row.caller_mchid = std::to_string(1'900'000'000LL + i);
    row.merchant_serial_no = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
    row.private_key_path = row.tenant_id + "_key.pem";
    row.wechatpay_key_id = "PUB_KEY_ID_0100000000000000000000000001";
    row.wechatpay_key_path = row.tenant_id + "_wechatpay.pem";
    for (const auto& [name, pem] :
         {std::pair{row.private_key_path, merchant_pem}, std::pair{row.wechatpay_key_path, wechatpay_pem}}) {
      std::ofstream(fs::path(dir) / name) << pem;
      fs::permissions(fs::path(dir) / name, fs::perms::owner_read | fs::perms::owner_write);
    }
    rows.push_back(std::move(row));
  }
  wechatpay::KeyCache cache;
  auto load_all = [&](wechatpay::KeyCache* c) {
    const auto start = Clock::now();
    for (const auto& row : rows)
      if (!load_tenant_credentials(row, dir, c)) std::abort();
    return ms_since(start);
  };
  const double cold_ms = load_all(&cache);
  const double warm_ms = load_all(&cache);
  std::printf(
      "%d tenants: before (io thread, estimated from the per-key figures) %.1f s; now: cold %.2f s (%.2f ms a "
      "tenant), again with unchanged files (SIGHUP) %.3f s (%.3f ms a tenant)\n",
      tenants, tenants * (decode_ms + pairwise_ms) / 1000, cold_ms / 1000, cold_ms / tenants, warm_ms / 1000,
      warm_ms / tenants);

  // --- On the KeyLoader's thread: how long is the io_context kept busy at a time? ----------
  boost::asio::io_context io;
  auto owner = std::make_shared<int>(0);
  int answers = 0;
  engine::KeyLoader loader(io, owner, [&](engine::KeysLoaded loaded) {
    if (!loaded.credentials) std::abort();
    // What the registry does with an answer: the keys shared with the requests.
    auto kept = std::make_shared<const TenantCredentials>(std::move(loaded.credentials).value());
    ++answers;
  });
  // Wall time between ticks includes the io thread waiting for a core on a loaded machine; its
  // own CPU time between ticks is the work it did meanwhile, which is what a load costs it.
  boost::asio::steady_timer ticker(io);
  double longest_gap_ms = 0, longest_busy_ms = 0;
  int ticks = 0, busy_over_2ms = 0;
  auto last_tick = Clock::now();
  double last_cpu_ms = thread_cpu_ms();
  std::function<void()> tick = [&] {
    ticker.expires_after(std::chrono::milliseconds{1});
    ticker.async_wait([&](boost::system::error_code) {
      longest_gap_ms = std::max(longest_gap_ms, ms_since(last_tick));
      const double busy_ms = thread_cpu_ms() - last_cpu_ms;
      longest_busy_ms = std::max(longest_busy_ms, busy_ms);
      busy_over_2ms += busy_ms > 2.0;
      ++ticks;
      last_tick = Clock::now();
      last_cpu_ms = thread_cpu_ms();
      if (answers < tenants) tick();
    });
  };
  // Asking for every load is part of reading callbackd.tenants (TenantRegistry::apply), timed
  // apart: the ticks measure what the answers cost the io thread.
  const auto start = Clock::now();
  for (const auto& row : rows) loader.load({row.tenant_id, 1, row, dir});  // fresh cache: every key checked
  const double asking_ms = ms_since(start);
  last_tick = Clock::now();
  last_cpu_ms = thread_cpu_ms();
  tick();
  io.run();
  std::printf(
      "%d tenants on the KeyLoader thread (cold cache): asking %.2f ms, all answered in %.2f s; between two 1 ms "
      "ticks of the io_context: at most %.2f ms of its CPU (over 2 ms in %d of %d), %.2f ms of wall time\n",
      tenants, asking_ms, ms_since(start) / 1000, longest_busy_ms, busy_over_2ms, ticks, longest_gap_ms);
  fs::remove_all(dir);
  return 0;
}
