// The engine's timing on real paths (issue 13): a one-off bad signature pauses a tenant for
// seconds, not the whole probe interval (item 9); a SIGHUP that changes request_timeout
// reaches the HTTPS client, not only the reconciler (item 10).
#include <signal.h>

#include <catch2/catch.hpp>
#include <thread>

#include "e2e/e2e_support.h"

using namespace e2e;
using namespace std::chrono_literals;
using callbackd::test::read_file;
using callbackd::test::ScopedChild;

TEST_CASE("one response whose signature does not verify pauses the tenant for seconds, not 5 minutes",
          "[e2e][engine_timing]") {
  Environment env;
  TenantSpec t("acme");
  t.rate_per_minute = 6000;
  env.add_tenant(t);
  env.add_rows("acme", 1, 200);
  // The default tenant_probe_interval (5m): the first probe must not wait for it.
  env.start_sandbox("", "  sub_merchants:\n    \"" + sub_merchant(1, 100) + "\": {kind: bad_signature}\n");
  const auto daemon = env.start_daemon();
  ScopedChild guard(daemon);
  const std::string paused_sql = "SELECT count(*) FROM callbackd.tenant_state WHERE paused_reason IS NOT NULL";
  REQUIRE(wait_until([&] { return env.count(paused_sql) == 1; }, 30s));
  const auto paused_at = std::chrono::steady_clock::now();
  CHECK(env.text("SELECT error_code FROM callbackd.tenant_state WHERE tenant_id = 'acme'")
            .starts_with("RESPONSE_SIGNATURE"));
  env.configure_sandbox("faults:\n  seed: 1\n");  // a one-off: every answer from now on verifies

  // The first probe comes 12-15 s after the pause (15 s jittered down), is applied and resumes.
  const bool resumed = wait_until([&] { return env.count(paused_sql) == 0; }, 25s);
  const auto paused_for = std::chrono::steady_clock::now() - paused_at;
  INFO(output_tail(read_file(daemon.output_path)));
  INFO("paused for " << std::chrono::duration_cast<std::chrono::milliseconds>(paused_for).count() << " ms");
  REQUIRE(resumed);
  CHECK(paused_for >= 8s);  // it really waited for a probe (not resumed by something else)
  CHECK(wait_until(
      [&] { return env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'") == 200; }, 30s));
  const std::string output = read_file(daemon.output_path);
  CHECK(output.find("event=tenant_resumed tenant=acme reason=\"probe applied\"") != std::string::npos);
  CHECK(guard.signal_and_wait(SIGTERM, 30s) == 0);
}

TEST_CASE("a SIGHUP that shortens request_timeout reaches the HTTPS client", "[e2e][engine_timing]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 1);
  // Every request is read and never answered: each attempt ends at the client's deadline.
  env.start_sandbox("  set_per_minute: 60000\n  timeout_hold_ms: 60000\n",
                    "  random:\n    - {kind: timeout, probability: 1.0}\n");
  const std::string extra = "reconciler:\n  retry_initial_backoff: 100ms\n  retry_max_backoff: 300ms\n";
  DaemonConfigOptions options;
  options.request_timeout = 4s;
  const auto daemon = env.start_daemon(extra, options);
  ScopedChild guard(daemon);
  const std::string latencies = "SELECT count(*) FROM callbackd.audit_log WHERE error_code = 'TIMEOUT' AND ";
  REQUIRE(wait_until([&] { return env.count(latencies + "latency_ms >= 3900") >= 1; }, 30s));

  options.request_timeout = 1s;
  env.write_daemon_config(extra, options);  // the same file, a shorter deadline
  const long long before = env.count("SELECT coalesce(max(id), 0) FROM callbackd.audit_log");
  REQUIRE(kill(daemon.pid, SIGHUP) == 0);
  REQUIRE(wait_until([&] { return read_file(daemon.output_path).find("event=reloaded") != std::string::npos; }, 10s));

  // The attempt in flight at the reload keeps its deadline (at most 4 s more); the ones after
  // it end at the new one, about 1 s, not 4 s.
  const std::string after = "SELECT count(*) FROM callbackd.audit_log WHERE id > " + std::to_string(before);
  REQUIRE(wait_until([&] { return env.count(after) >= 4; }, 30s));
  INFO(output_tail(read_file(daemon.output_path)));
  const std::string newest =
      after + " AND id > (SELECT min(id) FROM callbackd.audit_log WHERE id > " + std::to_string(before) + ")";
  CHECK(env.count(newest + " AND latency_ms BETWEEN 900 AND 2500") >= 3);
  CHECK(env.count(newest + " AND latency_ms > 2500") == 0);
  CHECK(guard.signal_and_wait(SIGTERM, 30s) == 0);
}
