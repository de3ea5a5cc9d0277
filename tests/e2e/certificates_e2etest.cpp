// Certificate mode (issue 16): a tenant with an APIv3 key and no WeChat Pay key downloads,
// checks, stores and rotates its platform certificates by itself against callbackd-sandbox
// (docs/runbook.md, "Platform certificates").
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <string>

#include "e2e/e2e_support.h"

using namespace e2e;

namespace {

long long downloads(Environment& env, const std::string& caller) {
  const auto stats = env.sandbox_stats();
  const auto& c = stats["callers"];
  return c.contains(caller) ? c[caller]["certificate_downloads"].get<long long>() : 0;
}

std::string serial_file(Environment& env, const std::string& name) {
  std::ifstream in(env.keys_dir() + "/" + name);
  std::string serial;
  std::getline(in, serial);
  return serial;
}

}  // namespace

TEST_CASE("certificate mode: converges with no platform key configured, and a restart downloads nothing",
          "[e2e][certificates]") {
  Environment env;
  env.add_certificate_mode_tenant("charlie", "1900000003");
  env.add_rows("charlie", 3, 200);
  env.add_tenant({"acme", "1900000001"});  // public-key mode beside it
  env.add_rows("acme", 1, 200);
  env.sandbox_certificate_mode({"1900000003"});
  env.start_sandbox();

  auto run = env.run_until_idle();
  INFO(output_tail(run.output));
  REQUIRE(run.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 400}});
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome <> 'applied'") == 0);
  // One download, on the first response it could not verify; its certificate is stored.
  CHECK(downloads(env, "1900000003") == 1);
  CHECK(downloads(env, "1900000001") == 0);
  CHECK(
      env.text("SELECT string_agg(serial_no, ',') FROM callbackd.platform_certificates WHERE tenant_id = 'charlie'") ==
      serial_file(env, "platform_cert_serial"));

  // A restart verifies with the stored certificate and downloads nothing.
  env.exec("UPDATE callbackd.desired_callbacks SET notify_url = notify_url || '/v2' WHERE tenant_id = 'charlie'");
  auto again = env.run_until_idle();
  INFO(output_tail(again.output));
  REQUIRE(again.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 400}});
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome <> 'applied'") == 0);
  CHECK(downloads(env, "1900000003") == 1);
}

TEST_CASE("certificate mode: a rotation mid-run costs one download, no failed row, no pause", "[e2e][certificates]") {
  Environment env;
  env.add_certificate_mode_tenant("charlie", "1900000003");
  env.exec("UPDATE callbackd.tenants SET rate_per_minute = 1200 WHERE tenant_id = 'charlie'");  // ~20 rows a second
  env.add_rows("charlie", 3, 200);                                                              // ~10 s
  env.sandbox_certificate_mode({"1900000003"}, "    listed_after_ms: 4000\n    switch_after_ms: 4000\n");
  env.start_sandbox();

  auto run = env.run_until_idle();
  INFO(output_tail(run.output));
  REQUIRE(run.exit_status == 0);
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 200}});
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome <> 'applied'") == 0);
  CHECK(env.count("SELECT count(*) FROM callbackd.tenant_state WHERE paused_reason IS NOT NULL") == 0);
  // The first download, then one refresh when the new certificate first signed.
  CHECK(downloads(env, "1900000003") == 2);
  CHECK(env.count("SELECT count(*) FROM callbackd.platform_certificates WHERE tenant_id = 'charlie'") == 2);
  // Both signed responses that were applied: the switch happened mid-run, and shows.
  CHECK(env.count("SELECT count(*) FROM callbackd.platform_certificates WHERE tenant_id = 'charlie' "
                  "AND first_used_at IS NOT NULL") == 2);
  // Both certificates signed responses that were verified: the switch happened mid-run.
  const std::string second = serial_file(env, "platform2_cert_serial");
  CHECK(contains(run.output, second));
}

TEST_CASE("certificate mode: a tampered or foreign-signed download pauses only its tenant, naming why",
          "[e2e][certificates]") {
  Environment env;
  env.add_certificate_mode_tenant("charlie", "1900000003");  // bad GCM tag
  env.add_rows("charlie", 3, 20);
  env.add_certificate_mode_tenant("delta", "1900000004");  // answer signed by an unlisted key
  env.add_rows("delta", 4, 20);
  env.add_certificate_mode_tenant("bravo", "1900000002");  // a public-key merchant: 404
  env.add_rows("bravo", 2, 20);
  env.add_tenant({"acme", "1900000001"});
  env.add_rows("acme", 1, 100);
  env.sandbox_certificate_mode({"1900000003", "1900000004"});
  env.start_sandbox("", "  certificates:\n    \"1900000003\": bad_tag\n    \"1900000004\": unlisted_signer\n");

  auto run = env.run_until_idle();
  INFO(output_tail(run.output));
  // Idle with work left (exit 2, cli.md): the three paused tenants' rows.
  REQUIRE(run.exit_status == 2);
  CHECK(contains(run.output, "tenant charlie paused (PLATFORM_CERTIFICATE_REFUSED, 20 rows not in sync)"));
  CHECK(contains(run.output, "tenant bravo paused (NO_PLATFORM_CERTIFICATE, 20 rows not in sync)"));
  // The others are not affected.
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'acme' AND state = 'in_sync'") == 100);
  // Nothing applied without a verified answer, nothing trusted, each tenant paused with its reason.
  for (const char* t : {"charlie", "delta", "bravo"}) {
    INFO(t);
    CHECK(env.count(std::string("SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = '") + t +
                    "' AND state = 'paused'") == 20);
    CHECK(env.count(std::string("SELECT count(*) FROM callbackd.platform_certificates WHERE tenant_id = '") + t +
                    "'") == 0);
  }
  // One download each: the requests in flight when it was refused take that refusal.
  CHECK(downloads(env, "1900000003") == 1);
  CHECK(downloads(env, "1900000004") == 1);
  CHECK(env.text("SELECT error_code FROM callbackd.tenant_state WHERE tenant_id = 'charlie'") ==
        "PLATFORM_CERTIFICATE_REFUSED");
  CHECK(
      contains(env.text("SELECT paused_reason FROM callbackd.tenant_state WHERE tenant_id = 'charlie'"), "(bad_tag)"));
  CHECK(contains(env.text("SELECT paused_reason FROM callbackd.tenant_state WHERE tenant_id = 'delta'"),
                 "(signature_invalid)"));
  CHECK(env.text("SELECT error_code FROM callbackd.tenant_state WHERE tenant_id = 'bravo'") ==
        "NO_PLATFORM_CERTIFICATE");
  CHECK(contains(env.text("SELECT paused_reason FROM callbackd.tenant_state WHERE tenant_id = 'bravo'"),
                 "this merchant uses a WeChat Pay public key: set wechatpay_key_id and wechatpay_key_path"));
}
