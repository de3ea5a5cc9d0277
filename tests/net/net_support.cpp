#include "net/net_support.h"

#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/keys.h"

namespace nettest {

namespace asio = boost::asio;

namespace {
std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  if (line.empty()) throw std::runtime_error("cannot read " + path + " (did the sandbox_keys fixture run?)");
  return line;
}
std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

std::string keys_dir(const std::string& which) { return std::string(CALLBACKD_NET_KEYS_DIR) + "/" + which; }

sandbox::SandboxConfig sandbox_config(const std::string& address) {
  static std::atomic<int> counter{0};
  const std::string dir = keys_dir();
  sandbox::SandboxConfig c;
  c.source = "nettest";
  c.listen_address = address;
  c.port = 0;
  c.tls_certificate_file = dir + "/server.pem";
  c.tls_private_key_file = dir + "/server.key";
  c.platform.key_id = read_line(dir + "/platform_key_id");
  c.platform.private_key_file = dir + "/platform_private.pem";
  for (const char* m : {"1900000001", "1900000002"})
    c.merchants.push_back(
        {m, read_line(dir + "/merchant_" + m + ".serial"), dir + "/merchant_" + m + ".pem", std::nullopt});
  c.record_file = (std::filesystem::temp_directory_path() /
                   ("callbackd-nettest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".jsonl"))
                      .string();
  std::filesystem::remove(*c.record_file);
  c.limits.timeout_hold = std::chrono::milliseconds(3000);
  return c;
}

Sandbox::Sandbox(sandbox::SandboxConfig config)
    : record_path_(config.record_file.value_or("")),
      server_(std::make_unique<sandbox::SandboxServer>(std::move(config))),
      port_(server_->start()) {}

Sandbox::~Sandbox() {
  server_->stop();
  std::error_code ignored;
  if (!record_path_.empty()) std::filesystem::remove(record_path_, ignored);
}

WechatpayConfig client_config(std::uint16_t port, const std::string& host) {
  WechatpayConfig c;
  c.base_url = "https://" + host + ":" + std::to_string(port);
  c.backup_url = "";
  c.ca_file = keys_dir() + "/ca.pem";
  c.connect_timeout = std::chrono::milliseconds(2000);
  c.request_timeout = std::chrono::milliseconds(3000);
  c.idle_timeout = std::chrono::milliseconds(5000);
  c.max_connections_per_host = 4;
  c.max_response_bytes = 64 * 1024;
  return c;
}

wechatpay::MerchantCredentials tenant(const std::string& caller_mchid) {
  const std::string dir = keys_dir();
  auto key = wechatpay::load_private_key_file(dir + "/merchant_" + caller_mchid + ".key");
  if (!key) throw std::runtime_error(key.error().message);
  return wechatpay::MerchantCredentials{caller_mchid, read_line(dir + "/merchant_" + caller_mchid + ".serial"),
                                        key.value()};
}

namespace {
http::HttpRequest signed_request(const wechatpay::MerchantCredentials& t, const std::string& method,
                                 const std::string& target, std::string body, std::int64_t timestamp) {
  auto nonce = wechatpay::make_nonce();
  auto auth = wechatpay::authorization_header(t, method, target, body, timestamp, nonce.value());
  if (!auth) throw std::runtime_error(auth.error().message);
  http::HttpRequest r;
  r.method = method;
  r.target = target;
  r.body = std::move(body);
  r.authorization = auth.value();
  r.wechatpay_serial = read_line(keys_dir() + "/platform_key_id");
  return r;
}
}  // namespace

http::HttpRequest signed_post(const wechatpay::MerchantCredentials& t, const std::string& sub_merchant,
                              const std::string& notify_url, std::optional<bool> push_switch,
                              std::optional<std::int64_t> timestamp) {
  return signed_request(t, "POST", std::string(wechatpay::kFavorCallbacksPath),
                        wechatpay::favor_callbacks_request_body(sub_merchant, notify_url, push_switch),
                        timestamp.value_or(unix_now()));
}

http::HttpRequest signed_get(const wechatpay::MerchantCredentials& t, const std::string& sub_merchant) {
  return signed_request(t, "GET", std::string(wechatpay::kFavorCallbacksPath) + "?mchid=" + sub_merchant, "",
                        unix_now());
}

wechatpay::KeySet platform_keys() {
  const std::string dir = keys_dir();
  auto key = wechatpay::load_verification_key_file(dir + "/platform_public.pem");
  if (!key) throw std::runtime_error(key.error().message);
  wechatpay::KeySet set;
  if (!set.add(read_line(dir + "/platform_key_id"), key.value())) throw std::runtime_error("platform key refused");
  return set;
}

Result<wechatpay::VerifiedResponse, wechatpay::VerifyError> verify(const http::HttpResponse& response) {
  return wechatpay::verify_response(platform_keys(), http::response_headers(response), response.body,
                                    std::chrono::system_clock::now());
}

void with_client(const WechatpayConfig& config, const std::function<asio::awaitable<void>(http::HttpsClient&)>& body) {
  asio::io_context io;
  http::HttpsClient client(io, config);
  asio::co_spawn(io, body(client), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

Result<http::HttpResponse, http::TransportError> send(std::uint16_t port, http::HttpRequest request) {
  return http::send_blocking(client_config(port), std::move(request));
}

}  // namespace nettest
