// systemd/callbackd.service itself under a real systemd (252 on Debian 12) as PID 1:
// systemd-nspawn boots this machine's own /usr in a throwaway container (docs/operations.md,
// "The unit under a real systemd"). Unlike e2e/systemd_e2etest.cpp, which plays systemd's part itself, here systemd
// allocates the DynamicUser=, copies the keys with LoadCredential= (chowned to that user, mode
// 0400, on 252), applies every sandboxing line of the unit, owns NOTIFY_SOCKET, the watchdog
// and the journal stream, runs ExecReload= and applies RestartPreventExitStatus=. The unit is
// bound in unchanged; a drop-in, as an operator would write one, points ExecStart= at the built
// binary and shortens WatchdogSec= (tests/systemd/nspawn/callbackd.service.d/nspawn-test.conf).
//
// Inside the container (--private-network: loopback only) run callbackd-sandbox (a unit of
// the test's) and the driver (tests/systemd/nspawn/nspawn-driver), which starts the unit,
// waits for convergence, reloads with a changed log format, inserts a row, stops the unit,
// starts it with a bad config, and writes what systemd said to /out/steps. PostgreSQL is a
// cluster of this test's own, its socket bound in at Debian's /run/postgresql (the unit's
// PrivateTmp= would hide the harness's directory under /tmp); the daemon logs in as the role
// named after the unit's User=, with no user= in its URL. Everything the dynamic user reads is
// copied into a directory this test creates with explicit modes, so the checkout's own
// permissions (CI may check out under a 0700 directory, umask 077) do not matter.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "e2e/e2e_support.h"
#include "systemd/nspawn_support.h"

using namespace e2e;
using namespace callbackd::test::nspawn;
using callbackd::test::read_file;
namespace fs = std::filesystem;

namespace {

constexpr int kRows = 20;
constexpr std::uint16_t kSandboxPort = 8443;  // the container's own loopback: nothing else binds there
const std::string kStageInContainer = "/opt/callbackd-test";

}  // namespace

TEST_CASE("callbackd.service under a real systemd as PID 1: READY=1, LoadCredential=, converged rows, reload, stop",
          "[nspawn][systemd]") {
  if (const auto reason = why_nspawn_cannot_run()) {
    // ctest's SKIP_REGULAR_EXPRESSION (tests/CMakeLists.txt) reports this as skipped.
    std::cout << "nspawn_test_skipped: " << *reason << std::endl;
    return;
  }
  // A cluster of the test's own: the daemon's role is named after the unit's User=, and roles
  // are cluster-wide (tests in parallel share the harness's cluster).
  PrivateCluster cluster;
  Environment env;
  // The role the docs tell operators to create: the dynamic user's name, in callbackd_daemon.
  env.exec("CREATE ROLE callbackd LOGIN IN ROLE callbackd_daemon");
  const std::string pg_socket = env.db().host() + "/.s.PGSQL.5432";
  REQUIRE(fs::exists(pg_socket));

  const RemoveTree cleanup{make_temp_dir("callbackd-nspawn")};
  const std::string stage = cleanup.path + "/stage";  // -> /opt/callbackd-test: binaries, config, driver
  const std::string keys = cleanup.path + "/keys";    // -> /etc/callbackd/keys: what LoadCredential= copies
  const std::string out = cleanup.path + "/out";      // -> /out: the driver's record
  const auto world_readable = kWorldReadableDir;
  const auto public_file = kPublicFile;
  const auto private_file = kPrivateFile;
  make_dir(stage, world_readable);
  make_dir(stage + "/bin", world_readable);
  make_dir(keys, fs::perms::owner_all);
  make_dir(out, fs::perms::owner_all);
  install_file(CALLBACKD_BINARY, stage + "/bin/callbackd", world_readable);
  install_file(CALLBACKD_SANDBOX_BINARY, stage + "/bin/callbackd-sandbox", world_readable);
  install_file(CALLBACKD_SOURCE_DIR "/tests/systemd/nspawn/nspawn-driver", stage + "/nspawn-driver", world_readable);
  install_file(env.keys_dir() + "/ca.pem", stage + "/ca.pem", public_file);
  // The operator's root-only key directory (docs/operations.md, "Keys under systemd").
  make_dir(keys + "/acme", fs::perms::owner_all);
  install_file(env.keys_dir() + "/merchant_1900000001.key", keys + "/acme/apiclient_key.pem", private_file);
  install_file(env.keys_dir() + "/platform_public.pem", keys + "/acme/wechatpay_public.pem", private_file);

  // Key paths are the credential names LoadCredential=keys:/etc/callbackd/keys gives them.
  TenantSpec tenant("acme");
  tenant.private_key_path = "keys_acme_apiclient_key.pem";
  tenant.wechatpay_key_path = "keys_acme_wechatpay_public.pem";
  env.add_tenant(tenant);
  env.add_rows("acme", 1, kRows);

  DaemonConfigOptions options;
  options.credentials_dir = false;  // $CREDENTIALS_DIRECTORY, set by systemd
  // No user=: libpq takes the name of the process's user, which only resolves through
  // nss-systemd (the dynamic user exists only while the unit runs).
  options.database_url = "host=/run/postgresql dbname=" + env.db().name();
  options.metrics_listen = "127.0.0.1:9464";
  options.base_url = "https://127.0.0.1:" + std::to_string(kSandboxPort);
  options.ca_file = "/etc/callbackd/ca.pem";
  install_file(env.write_daemon_config("", options), stage + "/callbackd.yaml", public_file);
  // The reload changes one value whose effect shows: the log format.
  install_file(env.write_daemon_config("log:\n  format: json\n", options), stage + "/callbackd-reloaded.yaml",
               public_file);
  const std::string sandbox_config = env.write_sandbox_config("", "", kSandboxPort);
  // /etc starts empty in the container: Debian 12's name service switch, as on a host, so that
  // the dynamic user's name resolves (files, then nss-systemd).
  std::ofstream(stage + "/nsswitch.conf") << "passwd: files systemd\ngroup: files systemd\nhosts: files dns\n";
  fs::permissions(stage + "/nsswitch.conf", public_file, fs::perm_options::replace);
  std::ofstream(stage + "/test.env") << "DB=" << env.db().name() << "\nROWS=" << kRows << "\nTENANT=acme\n"
                                     << "EXTRA_MCHID=" << sub_merchant(2, 0) << "\n"
                                     << "CREDENTIAL=keys_acme_apiclient_key.pem\n"
                                     << "SANDBOX_CONFIG=" << sandbox_config << "\n"
                                     << "SANDBOX_PORT_FILE=" << env.work_dir() << "/sandbox.port\n";

  const std::string units = CALLBACKD_SOURCE_DIR "/tests/systemd/nspawn";
  const std::string system = "/etc/systemd/system/";
  Container container(
      {"/usr/bin/systemd-nspawn", "-q", "-D", "/", "--volatile=yes", "--keep-unit", "--register=no",
       "--private-network",
       // The project's unit, unchanged, and the test's drop-in and units beside it.
       "--bind-ro=" CALLBACKD_SOURCE_DIR "/systemd/callbackd.service:" + system + "callbackd.service",
       "--bind-ro=" + units + "/callbackd.service.d:" + system + "callbackd.service.d",
       "--bind-ro=" + units + "/callbackd-sandbox.service:" + system + "callbackd-sandbox.service",
       "--bind-ro=" + units + "/callbackd-nspawn-test.service:" + system + "callbackd-nspawn-test.service",
       "--bind-ro=" + stage + ":" + kStageInContainer, "--bind-ro=" + keys + ":/etc/callbackd/keys",
       "--bind-ro=" + stage + "/nsswitch.conf:/etc/nsswitch.conf", "--bind=" + out + ":/out",
       "--bind=" + pg_socket + ":/run/postgresql/.s.PGSQL.5432",
       // The sandbox's keys, config and record at their host paths (Environment reads the record).
       "--bind-ro=" + env.keys_dir() + ":" + env.keys_dir(), "--bind=" + env.work_dir() + ":" + env.work_dir(),
       // Plain console text in the test's output.
       "--setenv=SYSTEMD_COLORS=0", "-b", "systemd.unit=callbackd-nspawn-test.service", "systemd.firstboot=off",
       // The unit wants network-online.target; with loopback only, systemd-networkd-wait-online
       // would hold it for its whole 2-minute timeout. A host's own network stack is not
       // under test here.
       "systemd.mask=systemd-networkd-wait-online.service"});
  const int status = container.wait_for(std::chrono::seconds{240});

  const auto steps = read_steps(out + "/steps");
  const std::string log = read_file(out + "/callbackd.log");
  INFO("driver steps:\n" << read_file(out + "/steps"));
  INFO("journalctl -u callbackd.service:\n" << tail(log, 6000));
  INFO("container console:\n" << tail(container.console(), 4000));
  REQUIRE(status == 0);
  CHECK(steps.count("fail") == 0);
  REQUIRE(steps.count("done") == 1);

  // READY=1: the start job finished (Type=notify), the STATUS= sent with it reached systemd,
  // and systemd logged "Started" (only after READY=1) before the daemon's own ready event.
  CHECK(steps.at("started_active") == "active/running");
  CHECK(steps.at("started_status_text").find("1 tenants") != std::string::npos);
  const auto started = log.find("Started callbackd");
  CHECK(started != std::string::npos);
  CHECK(log.find("event=ready") != std::string::npos);

  // The dynamic user (not root) read its key from the copy systemd made for it: on 252 (Debian
  // 12) 0400 and its own; from 254 on root's, 0400 plus an ACL entry for the user (stat: 0440).
  const std::string uid = steps.at("main_uid");
  CHECK(uid != "0");
  CHECK(steps.at("main_user") == "callbackd");
  CHECK(steps.at("credential") == (std::stoi(steps.at("systemd_version")) >= 254 ? "0 440" : uid + " 400"));

  CHECK(steps.at("converged") == std::to_string(kRows));
  CHECK(steps.at("metrics_applied") == std::to_string(kRows));

  // systemctl reload: ExecReload= sent SIGHUP, the new config is in force (JSON lines), the
  // same process is still running, never restarted, and it keeps applying changes.
  CHECK(log.find("Reloading callbackd") != std::string::npos);
  CHECK(log.find("Reloaded callbackd") != std::string::npos);
  CHECK(steps.at("reloaded_json") == "yes");
  CHECK(steps.at("reloaded_active") == "active/running");
  CHECK(steps.at("reloaded_main_pid") == steps.at("started_main_pid"));
  CHECK(steps.at("restarts") == "0");
  CHECK(steps.at("converged_after_reload") == std::to_string(kRows + 1));
  // journald took the daemon's <N> priority prefix: no line shows it.
  CHECK(log.find("\n<") == std::string::npos);

  // Watchdog pings from the event loop reached systemd (NotifyAccess=main) and kept the same
  // process alive over at least two periods.
  CHECK(steps.at("watchdog_pinged") == "yes");
  CHECK(steps.at("watchdog_main_pid") == steps.at("started_main_pid") + " restarts=0");
  CHECK(log.find("Watchdog timeout") == std::string::npos);

  // SIGTERM drained and the daemon exited 0 (ExecMainCode 1 = exited).
  CHECK(steps.at("stopped") == "success 1/0");
  // A bad config exits 78 and is not restarted in a loop.
  CHECK(steps.at("bad_config") == "exit-code 78 failed/failed");

  // What the database and the sandbox say afterwards: every row in sync, each with its applied
  // audit row written by the daemon's role and backed by a 200 the sandbox recorded.
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", kRows + 1}});
  // ... logged in as the role named after the unit's User=.
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'applied' AND db_user = 'callbackd'") ==
        kRows + 1);
  check_audit_matches_state_and_sandbox(env);
}
