// WeChat Pay for the engine tests, behind http::Sender: answers each request after a simulated
// latency (a wait on the SimClock) with what the test's script says, and records every request
// with the simulated time it arrived. Its 200s are signed with the test platform key
// (tests/data/keys/go_test_private_key_pkcs1.pem) under kPlatformKeyId, so that the reconciler's
// own verification (engine::classify_response) accepts them exactly as it accepts WeChat Pay's.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/keys.h"
#include "core/wechatpay/platform_certificates.h"
#include "sim_clock.h"
#include "http/https_client.h"

namespace callbackd::engine_test {

inline constexpr const char* kPlatformKeyId = "PUB_KEY_ID_0100000000000000000000000001";
// Certificate mode: the same platform key as the certificate tests/data/keys/go_test_cert.pem.
inline constexpr const char* kPlatformCertSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";

// What the fake does with one request.
enum class Answer {
  applied,       // 200, signed, the documented body
  rate_limited,  // 429 {"code":"FREQUENCY_LIMITED"} (WeChat Pay's own error body)
  server_error,  // 500 {"code":"SYSTEM_ERROR"}
  host_down,     // no connection: TransportError connect, host_unreachable
  proxy_403,     // a forward proxy's HTML 403 page, no WeChat Pay headers
  sign_error,    // 401 {"code":"SIGN_ERROR"}: the tenant's credentials are wrong
};

struct ReceivedRequest {
  Instant at{};
  std::string caller_mchid;   // from the Authorization header
  std::string sub_mchid;      // from the body
  std::string notify_url;     // from the body
  bool certificates = false;  // GET /v3/certificates
  bool read = false;          // GET /v3/marketing/favor/callbacks?mchid= (sub_mchid from the query)
  Answer answer = Answer::applied;
};

class FakeWechatpay final : public http::Sender {
 public:
  // The latency of every answer (a host that is down refuses as late).
  FakeWechatpay(boost::asio::io_context& io, SimClock& clock, Duration latency = std::chrono::milliseconds{40});

  // Certificate mode (set: every merchant): answers are signed under kPlatformCertSerial, and
  // GET /v3/certificates lists go_test_cert.pem encrypted with this APIv3 key.
  std::optional<wechatpay::ApiV3Key> certificate_mode;

  // Decides each request's answer; the default applies everything.
  std::function<Answer(const ReceivedRequest&)> script = [](const ReceivedRequest&) { return Answer::applied; };

  boost::asio::awaitable<Result<http::HttpResponse, http::TransportError>> send(http::HttpRequest request) override;
  std::vector<std::string> reconfigure(const WechatpayConfig&) override { return {}; }

  // What WeChat Pay holds per sub-merchant: set by every applied POST, answered by reads (absent:
  // 404 RESOURCE_NOT_EXISTS). Tests seed it, or change it out of band (drift).
  std::map<std::string, std::string> live;

  const std::vector<ReceivedRequest>& received() const { return received_; }
  std::size_t count(Answer answer) const;
  std::size_t in_flight() const { return in_flight_; }
  std::size_t max_in_flight() const { return max_in_flight_; }

 private:
  http::HttpResponse signed_applied(const std::string& notify_url);
  http::HttpResponse signed_answer(std::string body);
  http::HttpResponse certificates_answer();

  boost::asio::io_context& io_;
  SimClock& clock_;
  Duration latency_;
  wechatpay::PrivateKey platform_key_;
  // RSA signing is the costly part of a test: a body signed at one second is signed once.
  std::map<std::pair<std::string, std::int64_t>, wechatpay::ResponseSignature> signatures_;
  std::vector<ReceivedRequest> received_;
  std::size_t in_flight_ = 0;
  std::size_t max_in_flight_ = 0;
  std::uint64_t request_ids_ = 0;
};

}  // namespace callbackd::engine_test
