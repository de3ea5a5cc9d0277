#include "fake_wechatpay.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/wechatpay/verification.h"

namespace callbackd::engine_test {

namespace {

std::string read_fixture(const std::string& name) {
  const std::string path = std::string(CALLBACKD_TEST_DATA) + "/keys/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read test fixture " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

wechatpay::PrivateKey platform_key() {
  auto key = wechatpay::parse_private_key_pem(read_fixture("go_test_private_key_pkcs1.pem"), "platform key");
  if (!key) throw std::runtime_error(key.error().message);
  return key.value();
}

// The value of `"name":"…"` in a JSON body or `name="…"` in an Authorization header; the
// daemon builds both, so no escaping occurs in what the tests send.
std::string field(const std::string& text, const std::string& opening) {
  const auto at = text.find(opening);
  if (at == std::string::npos) return {};
  const auto start = at + opening.size();
  return text.substr(start, text.find('"', start) - start);
}

http::HttpResponse error_answer(int status, const std::string& code, const std::string& message) {
  http::HttpResponse r;
  r.status = status;
  r.body = R"({"code":")" + code + R"(","message":")" + message + R"("})";
  r.host = "api.mch.weixin.qq.com";
  return r;
}

}  // namespace

FakeWechatpay::FakeWechatpay(boost::asio::io_context& io, SimClock& clock, Duration latency)
    : io_(io), clock_(clock), latency_(latency), platform_key_(platform_key()) {}

std::size_t FakeWechatpay::count(Answer answer) const {
  std::size_t n = 0;
  for (const auto& r : received_) n += r.answer == answer;
  return n;
}

http::HttpResponse FakeWechatpay::signed_applied(const std::string& notify_url) {
  return signed_answer(R"({"update_time":"2026-12-06T20:00:00+08:00","notify_url":")" + notify_url + R"("})");
}

http::HttpResponse FakeWechatpay::certificates_answer() {
  auto body = wechatpay::certificates_answer({{kPlatformCertSerial, "2026-11-27T05:48:02+08:00",
                                               "2126-11-03T05:48:02+08:00", read_fixture("go_test_cert.pem")}},
                                             *certificate_mode, {"simnonce1234"});
  if (!body) throw std::runtime_error(body.error().message);
  return signed_answer(std::move(body).value());
}

http::HttpResponse FakeWechatpay::signed_answer(std::string body) {
  http::HttpResponse r;
  r.status = 200;
  r.body = std::move(body);
  r.host = "api.mch.weixin.qq.com";
  const std::int64_t ts =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.wall_now().time_since_epoch()).count();
  auto [it, inserted] = signatures_.try_emplace({r.body, ts});
  if (inserted) {
    auto sig = wechatpay::sign_response(platform_key_, certificate_mode ? kPlatformCertSerial : kPlatformKeyId, r.body,
                                        ts, "simnonce" + std::to_string(ts));
    if (!sig) throw std::runtime_error(sig.error().message);
    it->second = sig.value();
  }
  const auto& sig = it->second;
  r.wechatpay_headers = {{std::string(wechatpay::kHeaderTimestamp), sig.timestamp},
                         {std::string(wechatpay::kHeaderNonce), sig.nonce},
                         {std::string(wechatpay::kHeaderSignature), sig.signature},
                         {std::string(wechatpay::kHeaderSerial), sig.serial},
                         {std::string(wechatpay::kHeaderSignatureType), sig.signature_type}};
  return r;
}

boost::asio::awaitable<Result<http::HttpResponse, http::TransportError>> FakeWechatpay::send(
    http::HttpRequest request) {
  ReceivedRequest got;
  got.at = clock_.now();
  got.caller_mchid = field(request.authorization, "mchid=\"");
  got.sub_mchid = field(request.body, "\"mchid\":\"");
  got.notify_url = field(request.body, "\"notify_url\":\"");
  got.certificates = request.target == wechatpay::kCertificatesPath;
  const std::string read_prefix = std::string(wechatpay::kFavorCallbacksPath) + "?mchid=";
  if (request.method == "GET" && request.target.rfind(read_prefix, 0) == 0) {
    got.read = true;
    got.sub_mchid = request.target.substr(read_prefix.size());
  }
  got.answer = script(got);
  // Written as it is received (the fake has no connection to open); a host that is down
  // never gets it, as with the real client.
  if (got.answer != Answer::host_down && request.on_write) request.on_write();
  received_.push_back(got);
  ++in_flight_;
  max_in_flight_ = std::max(max_in_flight_, in_flight_);
  const Instant sent_at = clock_.now();
  co_await clock_.sleep_until(io_, sent_at + latency_);
  --in_flight_;

  http::HttpResponse r;
  switch (got.answer) {
    case Answer::applied:
      if (got.read) {
        const auto held = live.find(got.sub_mchid);
        r = held == live.end()
                ? error_answer(404, "RESOURCE_NOT_EXISTS", "nothing set")
                : signed_answer(R"({"mchid":")" + got.sub_mchid + R"(","notify_url":")" + held->second + R"("})");
        break;
      }
      if (!got.certificates) live[got.sub_mchid] = got.notify_url;
      r = got.certificates ? (certificate_mode ? certificates_answer()
                                               : error_answer(404, "RESOURCE_NOT_EXISTS", "no platform certificate"))
                           : signed_applied(got.notify_url);
      break;
    case Answer::rate_limited:
      r = error_answer(429, "FREQUENCY_LIMITED", "frequency limited");
      break;
    case Answer::server_error:
      r = error_answer(500, "SYSTEM_ERROR", "system error");
      break;
    case Answer::sign_error:
      r = error_answer(401, "SIGN_ERROR", "signature verification failed");
      break;
    case Answer::proxy_403:
      r.status = 403;
      r.body =
          "<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center>"
          "<hr><center>nginx</center></body></html>";
      r.host = "api.mch.weixin.qq.com";
      break;
    case Answer::host_down: {
      http::TransportError e;
      e.kind = http::TransportErrorKind::connect;
      e.message = "connecting to api.mch.weixin.qq.com:443: Connection refused";
      e.host = "api.mch.weixin.qq.com";
      e.request_sent = false;
      e.host_unreachable = true;
      co_return e;
    }
  }
  r.request_id = "sim-" + std::to_string(++request_ids_);
  r.latency = std::chrono::duration_cast<std::chrono::milliseconds>(latency_);
  co_return r;
}

}  // namespace callbackd::engine_test
