// callbackd-sandbox as WeChat Pay: authentication, validation, rate windows, every fault kind
// as the client sees it, the request record and the stats, all over real TLS on loopback.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include "core/wechatpay/authorization.h"
#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/keys.h"
#include "net/net_support.h"

using namespace nettest;
using callbackd::http::HttpsClient;
using callbackd::http::TransportErrorKind;
namespace asio = boost::asio;
namespace wp = callbackd::wechatpay;

namespace {
std::string code_of(const http::HttpResponse& r) { return wp::parse_error_body(r.body).code; }

sandbox::FaultRule rule(sandbox::FaultKind kind) {
  sandbox::FaultRule r;
  r.kind = kind;
  return r;
}
}  // namespace

TEST_CASE("requests WeChat Pay would refuse get 401 SIGN_ERROR", "[net][sandbox][auth]") {
  Sandbox sb;
  const auto t = tenant();

  auto tampered = signed_post(t, "1900000101", "https://a");
  tampered.body =
      wp::favor_callbacks_request_body("1900000101", "https://evil", std::nullopt);  // signed bytes != sent bytes
  auto r1 = send(sb.port(), tampered);
  REQUIRE(r1);
  CHECK(r1->status == 401);
  CHECK(code_of(r1.value()) == "SIGN_ERROR");
  CHECK(verify(r1.value()));  // error answers are signed too

  auto wrong_serial = t;
  wrong_serial.serial_no = "1234567890ABCDEF";
  auto r2 = send(sb.port(), signed_post(wrong_serial, "1900000101", "https://a"));
  REQUIRE(r2);
  CHECK(r2->status == 401);
  CHECK(r2->body.find("序列号") != std::string::npos);

  auto unknown = t;
  unknown.caller_mchid = "1900009999";
  auto r3 = send(sb.port(), signed_post(unknown, "1900000101", "https://a"));
  REQUIRE(r3);
  CHECK(r3->status == 401);

  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto r4 = send(sb.port(), signed_post(t, "1900000101", "https://a", std::nullopt, now - 300));
  REQUIRE(r4);
  CHECK(r4->status == 401);
  auto r5 = send(sb.port(), signed_post(t, "1900000101", "https://a", std::nullopt, now - 290));
  REQUIRE(r5);
  CHECK(r5->status == 200);

  auto other_key = signed_post(tenant("1900000002"), "1900000101", "https://a");
  // mchid 1900000001's serial with 1900000002's signature: right serial, wrong key.
  auto fields = wp::parse_authorization(other_key.authorization).value();
  auto forged = signed_post(t, "1900000101", "https://a");
  const auto sig_pos = forged.authorization.find("signature=\"");
  forged.authorization = forged.authorization.substr(0, sig_pos) + "signature=\"" + fields.signature + "\"";
  auto r6 = send(sb.port(), forged);
  REQUIRE(r6);
  CHECK(r6->status == 401);

  auto none = signed_post(t, "1900000101", "https://a");
  none.authorization.clear();
  auto r7 = send(sb.port(), none);
  REQUIRE(r7);
  CHECK(r7->status == 401);

  // The record says which requests verified.
  std::ifstream record(sb.record_path());
  int lines = 0, verified = 0;
  for (std::string line; std::getline(record, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    verified += j.at("signature_verified").get<bool>();
    CHECK(j.at("user_agent") == "callbackd/" CALLBACKD_VERSION);
  }
  CHECK(lines == 7);
  CHECK(verified == 1);
}

TEST_CASE("invalid bodies get 400 PARAM_ERROR naming the field", "[net][sandbox][validation]") {
  Sandbox sb;
  const auto t = tenant();
  const std::pair<std::string, std::string> cases[] = {
      {R"({"mchid":"123456789012345678901","notify_url":"https://a"})", "mchid"},
      {R"({"mchid":"1900000101"})", "notify_url"},
      {R"({"mchid":"1900000101","notify_url":"https://a","switch":"on"})", "switch"},
      {R"({"mchid":"1900000101",)", "body"},
  };
  for (const auto& [body, field] : cases) {
    INFO(body);
    auto req = signed_post(t, "x", "y");
    // Re-sign with the exact bytes of the bad body.
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    req.body = body;
    req.authorization = wp::authorization_header(t, "POST", req.target, body, now, wp::make_nonce().value()).value();
    auto res = send(sb.port(), req);
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(code_of(res.value()) == "PARAM_ERROR");
    CHECK(wp::parse_error_body(res->body).message.starts_with(field + ":"));
  }
}

TEST_CASE("GET answers the stored setting, 404 before any", "[net][sandbox]") {
  Sandbox sb;
  auto before = send(sb.port(), signed_get(tenant(), "1900000901"));
  REQUIRE(before);
  CHECK(before->status == 404);
  REQUIRE(send(sb.port(), signed_post(tenant(), "1900000901", "https://first")));
  REQUIRE(send(sb.port(), signed_post(tenant(), "1900000901", "https://second", false)));
  auto after = send(sb.port(), signed_get(tenant(), "1900000901"));
  REQUIRE(after);
  CHECK(after->status == 200);
  CHECK(nlohmann::json::parse(after->body) ==
        nlohmann::json{{"mchid", "1900000901"}, {"notify_url", "https://second"}});
}

TEST_CASE("the 1 s and 60 s windows are enforced per caller with 429", "[net][sandbox][rate]") {
  auto cfg = sandbox_config();
  cfg.limits.window_1s = 3;
  cfg.limits.window_60s = 5;
  Sandbox sb(cfg);
  std::vector<int> statuses;
  with_client(client_config(sb.port()), [&](HttpsClient& client) -> asio::awaitable<void> {
    auto post = [&](const std::string& mchid) -> asio::awaitable<int> {
      auto res = co_await client.send(signed_post(tenant(mchid), "1900000101", "https://a"));
      REQUIRE(res);
      if (res->status == 429) CHECK(code_of(res.value()) == "FREQUENCY_LIMIT_EXCEED");
      co_return res->status;
    };
    for (int i = 0; i < 4; ++i) statuses.push_back(co_await post("1900000001"));  // 4th: 1 s window
    CHECK(co_await post("1900000002") == 200);                                    // another caller is not limited
    co_await sleep_for(std::chrono::milliseconds(1100));
    for (int i = 0; i < 3; ++i) statuses.push_back(co_await post("1900000001"));  // 2 more fit the 60 s window
  });
  CHECK(statuses == std::vector<int>{200, 200, 200, 429, 200, 200, 429});
  const auto stats = sb.stats().at("callers").at("1900000001");
  CHECK(stats.at("max_in_1s") == 4);
  CHECK(stats.at("max_in_60s") == 7);
  CHECK(stats.at("outcomes").at("429 FREQUENCY_LIMIT_EXCEED") == 2);
}

TEST_CASE("every error code can be injected and arrives signed with its status", "[net][sandbox][faults]") {
  const std::pair<const char*, int> table[] = {
      {"PARAM_ERROR", 400},
      {"MCH_NOT_EXISTS", 400},
      {"INVALID_REQUEST", 400},
      {"APPID_MCHID_NOT_MATCH", 400},
      {"USER_ACCOUNT_ABNORMAL", 403},
      {"NOT_ENOUGH", 403},
      {"REQUEST_BLOCKED", 403},
      {"RESOURCE_NOT_EXISTS", 404},
      {"FREQUENCY_LIMIT_EXCEED", 429},
      {"SIGN_ERROR", 401},
      {"SYSTEM_ERROR", 500},
  };
  auto cfg = sandbox_config();
  int n = 0;
  for (const auto& [code, status] : table) {
    auto r = rule(sandbox::FaultKind::error);
    r.code = code;
    cfg.faults.by_sub_merchant["19000010" + std::to_string(10 + n++)] = r;
  }
  auto r503 = rule(sandbox::FaultKind::error);
  r503.code = "SYSTEM_ERROR";
  r503.status = 503;
  cfg.faults.by_sub_merchant["1900001099"] = r503;
  Sandbox sb(cfg);
  with_client(client_config(sb.port()), [&](HttpsClient& client) -> asio::awaitable<void> {
    int i = 0;
    for (const auto& [code, status] : table) {
      INFO(code);
      auto res = co_await client.send(signed_post(tenant(), "19000010" + std::to_string(10 + i++), "https://a"));
      REQUIRE(res);
      CHECK(res->status == status);
      CHECK(code_of(res.value()) == code);
      CHECK(verify(res.value()));
    }
    auto res = co_await client.send(signed_post(tenant(), "1900001099", "https://a"));
    REQUIRE(res);
    CHECK(res->status == 503);
  });
}

TEST_CASE("response faults: malformed body, bad signature, clock skew", "[net][sandbox][faults]") {
  auto cfg = sandbox_config();
  cfg.faults.by_sub_merchant["1900002001"] = rule(sandbox::FaultKind::malformed_body);
  cfg.faults.by_sub_merchant["1900002002"] = rule(sandbox::FaultKind::bad_signature);
  auto skew = rule(sandbox::FaultKind::clock_skew);
  skew.skew = std::chrono::seconds(600);
  cfg.faults.by_sub_merchant["1900002003"] = skew;
  auto small_skew = rule(sandbox::FaultKind::clock_skew);
  small_skew.skew = std::chrono::seconds(-120);
  cfg.faults.by_sub_merchant["1900002004"] = small_skew;
  Sandbox sb(cfg);

  auto malformed = send(sb.port(), signed_post(tenant(), "1900002001", "https://a"));
  REQUIRE(malformed);
  CHECK(malformed->status == 200);
  CHECK(verify(malformed.value()));                                  // signed correctly...
  CHECK_FALSE(wp::parse_favor_callbacks_response(malformed->body));  // ...but not the documented JSON

  auto bad_sig = send(sb.port(), signed_post(tenant(), "1900002002", "https://a"));
  REQUIRE(bad_sig);
  CHECK(bad_sig->status == 200);
  auto v = verify(bad_sig.value());
  REQUIRE_FALSE(v);
  CHECK(v.error().kind == wp::VerifyError::Kind::bad_signature);

  auto skewed = send(sb.port(), signed_post(tenant(), "1900002003", "https://a"));
  REQUIRE(skewed);
  auto vs = verify(skewed.value());
  REQUIRE_FALSE(vs);
  CHECK(vs.error().kind == wp::VerifyError::Kind::stale_timestamp);

  auto slightly = send(sb.port(), signed_post(tenant(), "1900002004", "https://a"));
  REQUIRE(slightly);
  CHECK(verify(slightly.value()));
  auto applied = wp::parse_favor_callbacks_response(slightly->body);
  REQUIRE(applied);
  REQUIRE(applied->update_time);
  const auto behind = std::chrono::system_clock::now() - *applied->update_time;
  CHECK(behind > std::chrono::seconds(110));
  CHECK(behind < std::chrono::seconds(130));
}

TEST_CASE("response fault unknown_serial: signed by the platform key, under a key id nobody has",
          "[net][sandbox][faults]") {
  auto cfg = sandbox_config();
  cfg.faults.by_sub_merchant["1900002005"] = rule(sandbox::FaultKind::unknown_serial);
  Sandbox sb(cfg);
  auto res = send(sb.port(), signed_post(tenant(), "1900002005", "https://a"));
  REQUIRE(res);
  CHECK(res->status == 200);
  const auto serial = res->header("Wechatpay-Serial");
  REQUIRE(serial);
  CHECK(serial->rfind("PUB_KEY_ID_", 0) == 0);
  CHECK(*serial != cfg.platform.key_id);
  auto v = verify(res.value());
  REQUIRE_FALSE(v);
  CHECK(v.error().kind == wp::VerifyError::Kind::unknown_serial);
  // The setting was stored (the server applied it; only the answer is unverifiable), and an
  // ordinary sub-merchant still verifies.
  CHECK(wp::parse_favor_callbacks_response(res->body));
  auto fine = send(sb.port(), signed_post(tenant(), "1900002006", "https://a"));
  REQUIRE(fine);
  CHECK(verify(fine.value()));
}

TEST_CASE("random faults follow the seed and can be changed at runtime", "[net][sandbox][faults]") {
  auto cfg = sandbox_config();
  cfg.faults.seed = 5;
  auto always500 = rule(sandbox::FaultKind::error);
  always500.code = "SYSTEM_ERROR";
  always500.probability = 1.0;
  cfg.faults.random.push_back(always500);
  Sandbox sb(cfg);
  auto res = send(sb.port(), signed_post(tenant(), "1900003001", "https://a"));
  REQUIRE(res);
  CHECK(res->status == 500);

  // POST /sandbox/config (unauthenticated test hook) swaps the plan: half 503, half fine.
  http::HttpRequest update;
  update.target = "/sandbox/config";
  update.body =
      "faults:\n  seed: 9\n  random:\n    - {kind: error, code: SYSTEM_ERROR, status: 503, probability: 0.5}\n";
  auto upd = send(sb.port(), update);
  REQUIRE(upd);
  CHECK(upd->status == 200);
  int s503 = 0, s200 = 0;
  with_client(client_config(sb.port()), [&](HttpsClient& client) -> asio::awaitable<void> {
    for (int i = 0; i < 20; ++i) {
      auto r = co_await client.send(signed_post(tenant(), "1900003001", "https://a"));
      REQUIRE(r);
      (r->status == 503 ? s503 : s200) += 1;
    }
  });
  CHECK(s503 + s200 == 20);
  CHECK(s503 > 2);
  CHECK(s200 > 2);

  update.body = "faults: {random: [{kind: explode}]}";
  auto bad = send(sb.port(), update);
  REQUIRE(bad);
  CHECK(bad->status == 400);
}

TEST_CASE("stats count overlapping requests for one sub-merchant", "[net][sandbox][stats]") {
  auto cfg = sandbox_config();
  auto slow = rule(sandbox::FaultKind::delay);
  slow.delay = std::chrono::milliseconds(1000);  // wide, so both surely overlap on a loaded machine
  cfg.faults.by_sub_merchant["1900004001"] = slow;
  Sandbox sb(cfg);
  std::thread a([&] { (void)send(sb.port(), signed_post(tenant(), "1900004001", "https://a")); });
  std::thread b([&] { (void)send(sb.port(), signed_post(tenant(), "1900004001", "https://b")); });
  a.join();
  b.join();
  const auto stats = sb.stats();
  CHECK(stats.at("concurrent_same_sub_merchant") == 1);
  CHECK(stats.at("callers").at("1900000001").at("outcomes").at("200 delay") == 2);
}

TEST_CASE("certificate mode: responses carry the platform certificate's serial", "[net][sandbox][auth]") {
  auto cfg = sandbox_config();
  cfg.platform.key_id.clear();  // defaults to the certificate's serial
  cfg.platform.certificate_file = keys_dir() + "/platform_cert.pem";
  Sandbox sb(cfg);
  auto res = send(sb.port(), signed_post(tenant(), "1900005001", "https://a"));
  REQUIRE(res);
  CHECK(res->status == 200);
  std::ifstream serial_file(keys_dir() + "/platform_cert_serial");
  std::string serial;
  std::getline(serial_file, serial);
  CHECK(res->header("Wechatpay-Serial") == serial);

  auto cert = wp::load_verification_key_file(keys_dir() + "/platform_cert.pem");
  REQUIRE(cert);
  wp::KeySet keys;
  REQUIRE(keys.add_certificate(cert.value()));
  CHECK(wp::verify_response(keys, http::response_headers(res.value()), res->body, std::chrono::system_clock::now()));
  // A tenant that only knows the public-key id cannot verify it: unknown serial.
  auto v = verify(res.value());
  REQUIRE_FALSE(v);
  CHECK(v.error().kind == wp::VerifyError::Kind::unknown_serial);
}
