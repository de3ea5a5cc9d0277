// Helpers for the network tier: an in-process sandbox on an ephemeral loopback port, a
// signing tenant, response verification, and a way to run client coroutines to completion.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/wechatpay/signing.h"
#include "core/wechatpay/verification.h"
#include "http/https_client.h"
#include "sandbox/sandbox_config.h"
#include "sandbox/sandbox_server.h"

namespace nettest {

using namespace callbackd;

// Directory written by scripts/sandbox-keys for the fixture: "trusted" or "untrusted".
std::string keys_dir(const std::string& which = "trusted");

// Sandbox settings for tests: listen on `address`:0, merchants 1900000001 and 1900000002,
// a fresh record file, defaults otherwise.
sandbox::SandboxConfig sandbox_config(const std::string& address = "127.0.0.1");

// A running sandbox, stopped when it goes out of scope.
class Sandbox {
 public:
  explicit Sandbox(sandbox::SandboxConfig config = sandbox_config());
  ~Sandbox();  // stops the server and removes its record file
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;
  std::uint16_t port() const { return port_; }
  nlohmann::json stats() const { return nlohmann::json::parse(server_->stats_json()); }
  std::string record_path() const { return record_path_; }
  sandbox::SandboxServer& server() { return *server_; }

 private:
  std::string record_path_;
  std::unique_ptr<sandbox::SandboxServer> server_;
  std::uint16_t port_;
};

// Short deadlines so that failing tests fail fast; ca_file = the fixture's CA; no backup.
WechatpayConfig client_config(std::uint16_t port, const std::string& host = "127.0.0.1");

wechatpay::MerchantCredentials tenant(const std::string& mchid = "1900000001");

http::HttpRequest signed_post(const wechatpay::MerchantCredentials& t, const std::string& sub_merchant,
                              const std::string& notify_url, std::optional<bool> push_switch = std::nullopt,
                              std::optional<std::int64_t> timestamp = std::nullopt);
http::HttpRequest signed_get(const wechatpay::MerchantCredentials& t, const std::string& sub_merchant);

// The platform public key under its PUB_KEY_ID_ id, as a tenant would configure it.
wechatpay::KeySet platform_keys();
Result<wechatpay::VerifiedResponse, wechatpay::VerifyError> verify(const http::HttpResponse& response);

// Runs `body` on a fresh single-threaded io_context with one client; rethrows what it throws
// (Catch assertions inside coroutines work).
void with_client(const WechatpayConfig& config,
                 const std::function<boost::asio::awaitable<void>(http::HttpsClient&)>& body);
boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds d);

// One blocking request with a fresh client.
Result<http::HttpResponse, http::TransportError> send(std::uint16_t port, http::HttpRequest request);

}  // namespace nettest
