// Certificate mode in simulated time (engine/certificate_keeper.h): a tenant without any
// platform certificate downloads one on its first response and verifies that response again;
// requests in flight at that moment share the one download; the certificate is stored; and
// the schedule refreshes it about 12 h later, with no request needed.
#include <catch2/catch.hpp>

#include "engine_harness.h"

using namespace callbackd;
using namespace callbackd::engine_test;
using namespace std::chrono_literals;

namespace {

std::vector<Instant> downloads(const Engine& e) {
  std::vector<Instant> at;
  for (const auto& r : e.wechatpay.received())
    if (r.certificates) at.push_back(r.at);
  return at;
}

}  // namespace

TEST_CASE("certificate mode: one download on the first response, rows applied, refreshed 11-12 h later",
          "[engine][certificates]") {
  Engine e(1);
  e.certificate_mode(0);
  e.add_rows(0, 40);
  e.start();
  REQUIRE(e.run_until([&] { return e.store.in_sync() == 40; }, 2min));
  INFO(e.figures());
  // Four requests were in flight when the first answer came back: one download for all.
  REQUIRE(downloads(e).size() == 1);
  CHECK(e.store.pauses().empty());
  CHECK(e.wechatpay.received().size() == 41);  // every row once, and the download
  const TenantRow* row = e.store.tenant("t0000");
  REQUIRE(row->platform_certificates.size() == 1);
  CHECK(row->platform_certificates[0].serial == kPlatformCertSerial);
  CHECK(e.reconciler->stats().certificate_downloads.at("accepted") == 1);

  // Nothing to send for hours: the schedule downloads again within 11-12 h of the first.
  const Instant first = downloads(e).front();
  REQUIRE(e.run_for(13h));
  const auto all = downloads(e);
  REQUIRE(all.size() == 2);
  CHECK(all[1] - first >= 11h);
  CHECK(all[1] - first <= 12h);
  CHECK(e.store.pauses().empty());
}

TEST_CASE("certificate mode: a public-key merchant's 404 pauses the tenant with the fix", "[engine][certificates]") {
  Engine e(1);
  e.certificate_mode(0);
  e.wechatpay.certificate_mode.reset();  // WeChat Pay signs with PUB_KEY_ID_…, /v3/certificates is 404
  e.add_rows(0, 10);
  e.start();
  REQUIRE(e.run_for(30s));
  INFO(e.figures());
  CHECK(e.store.in_sync() == 0);
  REQUIRE(e.store.pauses().count("t0000") == 1);
  const auto& pause = e.store.pauses().at("t0000");
  CHECK(pause.error_code == "NO_PLATFORM_CERTIFICATE");
  CHECK_THAT(pause.reason,
             Catch::Matchers::Contains(
                 "this merchant uses a WeChat Pay public key: set wechatpay_key_id and wechatpay_key_path"));
  CHECK(e.reconciler->stats().certificate_downloads.at("not_found") >= 1);
}

TEST_CASE("certificate mode: a platform_ca_file that cannot be loaded refuses every download (fails closed)",
          "[engine][certificates]") {
  // Checked at start-up, then replaced or made unreadable before the engine loads it: the chain
  // check the operator asked for cannot be made, so nothing is trusted without it.
  Config config = Engine::default_config();
  config.wechatpay.platform_ca_file = "/nonexistent/callbackd-engine-test/platform-ca.pem";
  Engine e(1, 1000, config);
  e.certificate_mode(0);
  e.add_rows(0, 10);
  e.start();
  REQUIRE(e.run_for(30s));
  INFO(e.figures());
  CHECK(e.store.in_sync() == 0);
  CHECK(downloads(e).empty());  // refused before any request
  REQUIRE(e.store.pauses().count("t0000") == 1);
  const auto& pause = e.store.pauses().at("t0000");
  CHECK(pause.error_code == "PLATFORM_CERTIFICATE_REFUSED");
  CHECK_THAT(pause.reason, Catch::Matchers::Contains("wechatpay.platform_ca_file could not be loaded"));
}
