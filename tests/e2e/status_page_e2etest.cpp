// The status page (issue 19; docs/operations.md, "The status page") in a real browser: the
// real daemon against PostgreSQL and callbackd-sandbox, its page on metrics.listen loaded by
// Debian's chromium through playwright-core (tests/browser/status-page.mjs, which only reports
// what it saw). This test compares what the browser read with SQL: every tenant's rows by
// state, the error groups, that hostile values from the bad-input cases are text (no script
// ran, no element was injected), that links and the search form lead to the right pages, and
// that nothing was loaded from anywhere else. Without node, chromium or tests/browser's
// node_modules (`./scripts/setup` installs all three) it prints "browser_test_skipped: <why>",
// which ctest reports as skipped.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>

#include "e2e/e2e_support.h"

using namespace e2e;
namespace fs = std::filesystem;

namespace {

const std::string kBrowserDir = CALLBACKD_SOURCE_DIR "/tests/browser";

std::optional<std::string> why_no_browser() {
  if (access("/usr/bin/node", X_OK) != 0) return "node not found at /usr/bin/node (Debian package nodejs)";
  if (access("/usr/bin/chromium", X_OK) != 0)
    return "chromium not found at /usr/bin/chromium (Debian package chromium; ./scripts/setup installs it)";
  if (!fs::exists(kBrowserDir + "/node_modules/playwright-core/package.json"))
    return "tests/browser/node_modules lacks playwright-core (./scripts/setup runs npm ci there)";
  return std::nullopt;
}

// Values from tests/e2e/bad_input_e2etest.cpp's kind, aimed at a page rather than a log line.
const std::string kScriptMchid = "<script>alert(1)</script>";
const std::string kImageUrl = "https://x.example.com/\"><img src=x onerror=alert(2)>";
const std::string kQuoteMchid = "1' OR '1'='1";
const std::string kQuoteUrl = "javascript:alert(3)//'\"<b>bold</b>";

// GET `path` from 127.0.0.1:`port` (HTTP/1.0, the whole answer), or "" when nothing came back
// within `limit`. No Catch assertion in here: it also runs on a thread of its own (std::async),
// and Catch's assertion handling is not thread-safe.
std::string http_get(int port, const std::string& path, std::chrono::seconds limit) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval tv{static_cast<time_t>(limit.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buf[8192];
      for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
    }
  }
  close(fd);
  return answer;
}

// A PostgreSQL backend stopped with SIGSTOP while this lives: whatever is sent to it waits.
// SIGCONT however the test ends.
class StoppedBackend {
 public:
  explicit StoppedBackend(int pid) : pid_(pid) { REQUIRE(kill(pid_, SIGSTOP) == 0); }
  ~StoppedBackend() { kill(pid_, SIGCONT); }
  StoppedBackend(const StoppedBackend&) = delete;
  StoppedBackend& operator=(const StoppedBackend&) = delete;

 private:
  int pid_;
};

}  // namespace

// The page reads on a connection and thread of its own (app/run_command.cpp). Checked where it
// matters: with the page's database session frozen (its backend stopped, as a scan of a
// million rows or a lock would hold it), a page load waits, and the reconciler goes on
// applying changes meanwhile. On one shared database thread the load would hold every claim
// and record behind it.
TEST_CASE("a status page load stuck in the database does not hold up the reconciler", "[e2e][status-page]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 5);
  env.start_sandbox();
  const int port = free_port();
  DaemonConfigOptions options;
  options.metrics_listen = "127.0.0.1:" + std::to_string(port);
  const auto daemon = env.start_daemon("", options);
  INFO("daemon output:\n" << output_tail(callbackd::test::read_file(daemon.output_path)));
  const auto in_sync = [&](long long rows) {
    return [&env, rows] {
      return env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'") == rows;
    };
  };
  REQUIRE(wait_until(in_sync(5), std::chrono::seconds{60}));

  // The first load opens the page's connection, named so in pg_stat_activity.
  REQUIRE(contains(http_get(port, "/", std::chrono::seconds{30}), " 200 "));
  const auto page_backend = env.count(
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'callbackd status page' AND datname = "
      "current_database()");
  REQUIRE(page_backend > 0);
  CHECK(env.count("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'callbackd' AND datname = "
                  "current_database()") >= 1);

  std::future<std::string> stuck_load;
  {
    const StoppedBackend frozen(static_cast<int>(page_backend));
    // Past the page's 2 s cache: this load goes to the frozen session and waits there.
    std::this_thread::sleep_for(std::chrono::milliseconds{2100});
    stuck_load = std::async(std::launch::async, [port] { return http_get(port, "/", std::chrono::seconds{60}); });
    std::this_thread::sleep_for(std::chrono::milliseconds{500});
    CHECK(stuck_load.wait_for(std::chrono::seconds{0}) == std::future_status::timeout);
    // Meanwhile new rows are claimed, sent and recorded.
    env.add_rows("acme", 2, 10);
    CHECK(wait_until(in_sync(15), std::chrono::seconds{30}));
    CHECK(stuck_load.wait_for(std::chrono::seconds{0}) == std::future_status::timeout);
  }
  // Thawed, the waiting load is answered.
  CHECK(contains(stuck_load.get(), " 200 "));
  CHECK(env.stop_daemon(daemon) == 0);
}

TEST_CASE("the status page in a real browser: numbers match SQL, links lead on, hostile values stay text",
          "[e2e][status-page][browser]") {
  if (const auto why = why_no_browser()) {
    std::cout << "browser_test_skipped: " << *why << std::endl;
    return;
  }
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  TenantSpec bravo("bravo", "1900000002");
  bravo.mode = "observe";  // its rows stay pending: a second row of different numbers
  env.add_tenant(bravo);
  env.add_rows("acme", 1, 30);
  env.add_rows("bravo", 2, 4);
  {
    pqxx::connection c(env.db().conninfo());
    pqxx::work tx(c);
    const std::string insert =
        "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES ($1, 'acme', $2, true)";
    tx.exec_params0(insert, kScriptMchid, "https://ok.example.com/");
    tx.exec_params0(insert, "3100000001", kImageUrl);
    tx.exec_params0(insert, kQuoteMchid, kQuoteUrl);
    tx.commit();
  }
  // Two rows fail for good, with one error code: one group of two.
  env.start_sandbox("", "  sub_merchants:\n    \"" + sub_merchant(1, 0) +
                            "\": {kind: error, code: PARAM_ERROR}\n    \"" + sub_merchant(1, 1) +
                            "\": {kind: error, code: PARAM_ERROR}\n");
  const int port = free_port();
  DaemonConfigOptions options;
  options.metrics_listen = "127.0.0.1:" + std::to_string(port);
  const auto daemon = env.start_daemon("", options);
  const bool settled = wait_until(
      [&] {
        return env.count(
                   "SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'acme' AND state IN "
                   "('pending', 'retrying')") == 0;
      },
      std::chrono::seconds{90});
  INFO("daemon output:\n" << output_tail(callbackd::test::read_file(daemon.output_path)));
  REQUIRE(settled);

  const std::string out = env.work_dir() + "/browser";
  fs::create_directories(out);
  const auto browser = callbackd::test::run_process_for({"/usr/bin/node", kBrowserDir + "/status-page.mjs",
                                                         "http://127.0.0.1:" + std::to_string(port), kScriptMchid, out},
                                                        std::chrono::seconds{120});
  INFO("status-page.mjs:\n" << output_tail(browser.output, 8000));
  INFO("daemon output after the browser:\n" << output_tail(callbackd::test::read_file(daemon.output_path)));
  REQUIRE(browser.exit_status == 0);
  // The one JSON line the script prints (chromium may print warnings before it).
  const auto json_at = browser.output.rfind("\n{\"overview\"");
  const auto seen = nlohmann::json::parse(browser.output.substr(json_at == std::string::npos ? 0 : json_at + 1));
  const auto& overview = seen.at("overview");

  // Served as HTML under a CSP that allows no script and nothing from elsewhere.
  CHECK(overview.at("status") == 200);
  CHECK(overview.at("content_type") == "text/html; charset=utf-8");
  const std::string csp = overview.at("csp");
  CHECK(contains(csp, "default-src 'none'"));
  CHECK(contains(csp, "style-src 'sha256-"));
  CHECK(seen.at("external_requests").empty());

  // Every tenant's rows by state, as SQL counts them right now (the daemon is idle).
  std::map<std::string, std::map<std::string, long long>> expected;
  {
    pqxx::connection c(env.db().conninfo());
    pqxx::read_transaction tx(c);
    for (const auto& r : tx.exec("SELECT tenant_id, state, count(*) FROM callbackd.sync_status GROUP BY 1, 2"))
      expected[r[0].as<std::string>()][r[1].as<std::string>()] = r[2].as<long long>();
  }
  CHECK(expected.at("acme").at("in_sync") == 28);
  CHECK(expected.at("acme").at("failed") == 2);
  CHECK(expected.at("acme").at("invalid") == 3);
  CHECK(expected.at("bravo").at("pending") == 4);
  REQUIRE(overview.at("tenants").size() == 2);
  for (const auto& t : overview.at("tenants")) {
    const std::string id = t.at("tenant");
    INFO("tenant " << id << ": " << t.dump());
    long long total = 0;
    for (const auto& [state, n] : t.at("states").items()) {
      const auto& want = expected.at(id);
      const auto it = want.find(state);
      CHECK(n.get<long long>() == (it == want.end() ? 0 : it->second));
      total += n.get<long long>();
    }
    CHECK(t.at("total") == total);
    CHECK(t.at("queued") == env.count("SELECT count(*) FROM callbackd.pending_work WHERE tenant_id = '" + id + "'"));
  }

  // The error group: one code, two rows, both sub-merchants named and linked.
  REQUIRE(overview.at("errors").size() == 1);
  const auto& group = overview.at("errors")[0];
  CHECK(group.at("tenant") == "acme");
  CHECK(group.at("state") == "failed");
  CHECK(group.at("code") == "PARAM_ERROR");
  CHECK(group.at("rows") == 2);
  CHECK(group.at("mchids") == nlohmann::json::array({sub_merchant(1, 0), sub_merchant(1, 1)}));

  // Hostile values: shown as the text they are, nothing ran, nothing was injected.
  std::set<std::string> invalid_mchids, invalid_urls;
  for (const auto& r : overview.at("invalid")) {
    invalid_mchids.insert(r.at("mchid"));
    invalid_urls.insert(r.at("notify_url"));
  }
  CHECK(invalid_mchids == std::set<std::string>{kScriptMchid, "3100000001", kQuoteMchid});
  CHECK(invalid_urls.count(kImageUrl) == 1);
  CHECK(invalid_urls.count(kQuoteUrl) == 1);
  CHECK(overview.at("scripts") == 0);
  CHECK(overview.at("images") == 0);
  CHECK(seen.at("dialogs") == 0);

  // The latest audit rows, newest first, ending at the newest row in the database.
  REQUIRE_FALSE(overview.at("audit_ids").empty());
  CHECK(overview.at("audit_ids")[0] == env.count("SELECT max(id) FROM callbackd.audit_log"));

  // The tenant link: that tenant's page with that tenant's numbers.
  const auto& tenant = seen.at("tenant");
  CHECK(tenant.at("clicked") == "acme");
  CHECK(tenant.at("url") == "http://127.0.0.1:" + std::to_string(port) + "/tenants/acme");
  CHECK(tenant.at("title") == "Tenant acme");
  REQUIRE(tenant.at("tenants").size() == 1);
  CHECK(tenant.at("tenants")[0].at("states").at("in_sync") == 28);
  CHECK(tenant.at("audit_ids")[0] == env.count("SELECT max(id) FROM callbackd.audit_log WHERE tenant_id = 'acme'"));

  // The error group's first sub-merchant: its desired value and its audit history.
  const auto& link = seen.at("error_link");
  CHECK(link.at("title") == "Sub-merchant " + sub_merchant(1, 0));
  CHECK(link.at("state") == "failed");
  CHECK(link.at("desired_notify_url") ==
        env.text("SELECT notify_url FROM callbackd.desired_callbacks WHERE mchid = '" + sub_merchant(1, 0) + "'"));
  CHECK(link.at("audit_rows") ==
        env.count("SELECT count(*) FROM callbackd.audit_log WHERE mchid = '" + sub_merchant(1, 0) + "'"));

  // The search form with the hostile mchid: found, as text, its desired value shown.
  const auto& search = seen.at("search");
  CHECK(contains(search.at("url"), "/sub-merchants?mchid=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"));
  CHECK(search.at("title") == "Sub-merchant " + kScriptMchid);
  CHECK(search.at("found") == true);
  CHECK(search.at("state") == "invalid");
  CHECK(search.at("desired_notify_url") == "https://ok.example.com/");
  CHECK(search.at("scripts") == 0);
  CHECK(search.at("images") == 0);

  // The screenshot docs/operations.md shows.
  CHECK(fs::file_size(out + "/status-page.png") > 10'000);
  if (const char* keep = std::getenv("CALLBACKD_SCREENSHOT_DIR"))
    fs::copy_file(out + "/status-page.png", std::string(keep) + "/status-page.png",
                  fs::copy_options::overwrite_existing);
  CHECK(env.stop_daemon(daemon) == 0);
}
