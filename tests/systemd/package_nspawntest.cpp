// The Debian package as an operator installs it (issue 19; docs/install.md): scripts/package
// builds callbackd_VERSION_amd64.deb from this build tree, and a container booted under a real
// systemd 252 (systemd-nspawn, as tests/systemd/service_nspawntest.cpp) installs it with dpkg,
// runs `callbackd --version` and `check-config`, and starts the INSTALLED unit
// (/lib/systemd/system/callbackd.service, ExecStart=/usr/bin/callbackd, no drop-in) against
// a PostgreSQL cluster of the test's own, bound in at /run/postgresql.
//
// The clean root: --volatile=yes gives the container an empty /etc, and this machine's /usr
// and /var (its dpkg database) as overlays whose writes stay in tmpfs. callbackd is installed
// nowhere on the host, so dpkg checks the package's Depends: (from dpkg-shlibdeps) against a
// real Debian package set. Bound in read-only from the host's /etc, because the empty /etc
// lacks them: the accounts that package set's dpkg database names (dpkg refuses to run with
// a statoverride for an unknown group) and what ca-certificates put in /etc/ssl (the
// conffile's wechatpay.ca_file).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "e2e/e2e_support.h"
#include "systemd/nspawn_support.h"

using namespace e2e;
using namespace callbackd::test::nspawn;
using callbackd::test::read_file;
namespace fs = std::filesystem;

TEST_CASE("callbackd_VERSION_amd64.deb installs into a clean root: --version, check-config, the installed unit boots",
          "[nspawn][package]") {
  if (const auto reason = why_nspawn_cannot_run()) {
    std::cout << "nspawn_test_skipped: " << *reason << std::endl;
    return;
  }
  for (const char* tool : {"/usr/bin/fakeroot", "/usr/bin/dpkg-shlibdeps"})
    if (access(tool, X_OK) != 0) {
      std::cout << "nspawn_test_skipped: " << tool << " not found (packages fakeroot and dpkg-dev; ./scripts/setup)"
                << std::endl;
      return;
    }
  const RemoveTree cleanup{make_temp_dir("callbackd-package")};
  const std::string debs = cleanup.path + "/debs";
  const std::string stage = cleanup.path + "/stage";
  const std::string out = cleanup.path + "/out";
  make_dir(debs, kWorldReadableDir);
  make_dir(stage, kWorldReadableDir);
  make_dir(out, fs::perms::owner_all);

  const auto built =
      callbackd::test::run_process({CALLBACKD_SOURCE_DIR "/scripts/package", "--build-dir", CALLBACKD_BUILD_DIR, debs});
  INFO("scripts/package:\n" << tail(built.output, 6000));
  REQUIRE(built.exit_status == 0);
  const std::string deb = debs + "/callbackd_" CALLBACKD_VERSION "_amd64.deb";
  REQUIRE(fs::exists(deb));
  REQUIRE(fs::exists(debs + "/callbackd-sandbox_" CALLBACKD_VERSION "_amd64.deb"));

  PrivateCluster cluster;
  Environment env;
  // The unit's dynamic user logs in as the role the docs tell operators to create.
  env.exec("CREATE ROLE callbackd LOGIN IN ROLE callbackd_daemon");
  const std::string pg_socket = env.db().host() + "/.s.PGSQL.5432";
  REQUIRE(fs::exists(pg_socket));

  install_file(CALLBACKD_SOURCE_DIR "/tests/systemd/package/package-driver", stage + "/package-driver",
               kWorldReadableDir);
  std::ofstream(stage + "/test.env") << "DB=" << env.db().name() << "\nVERSION=" CALLBACKD_VERSION "\n";
  std::ofstream(stage + "/nsswitch.conf") << "passwd: files systemd\ngroup: files systemd\nhosts: files dns\n";
  fs::permissions(stage + "/nsswitch.conf", kPublicFile, fs::perm_options::replace);

  const std::string unit = "callbackd-package-test.service";
  Container container(
      {"/usr/bin/systemd-nspawn", "-q", "-D", "/", "--volatile=yes", "--keep-unit", "--register=no",
       "--private-network",
       // Writable copies of the host's /usr and package database (tmpfs upper layers).
       "--overlay=/usr::/usr", "--overlay=/var::/var", "--bind-ro=/etc/ssl", "--bind-ro=/etc/passwd",
       "--bind-ro=/etc/group", "--bind-ro=" + debs + ":/pkg",
       "--bind-ro=" CALLBACKD_SOURCE_DIR "/tests/systemd/package/" + unit + ":/etc/systemd/system/" + unit,
       "--bind-ro=" + stage + ":/opt/callbackd-test", "--bind-ro=" + stage + "/nsswitch.conf:/etc/nsswitch.conf",
       "--bind=" + out + ":/out", "--bind=" + pg_socket + ":/run/postgresql/.s.PGSQL.5432", "--setenv=SYSTEMD_COLORS=0",
       "-b", "systemd.unit=" + unit, "systemd.firstboot=off", "systemd.mask=systemd-networkd-wait-online.service"});
  const int status = container.wait_for(std::chrono::seconds{240});

  const auto steps = read_steps(out + "/steps");
  INFO("driver steps:\n" << read_file(out + "/steps"));
  INFO("dpkg -i:\n" << tail(read_file(out + "/dpkg.log"), 3000));
  INFO("check-config:\n" << tail(read_file(out + "/check-config.log"), 3000));
  INFO("journalctl -u callbackd.service:\n" << tail(read_file(out + "/callbackd.log"), 4000));
  INFO("container console:\n" << tail(container.console(), 4000));
  REQUIRE(status == 0);
  CHECK(steps.count("fail") == 0);
  REQUIRE(steps.count("done") == 1);

  // Installed where the issue says, the sandbox not with it, the config a conffile.
  CHECK(steps.at("before_install") == "absent");
  CHECK(steps.at("dpkg_status") == "install ok installed");
  CHECK(steps.at("binary") == "/usr/bin/callbackd");
  CHECK(steps.at("unit_file") == "/lib/systemd/system/callbackd.service");
  CHECK(steps.at("conffiles") == "/etc/callbackd/callbackd.yaml ");
  CHECK(steps.at("sandbox_installed") == "no");
  CHECK(steps.at("man_page").find(".TH CALLBACKD 1") == 0);
  // packaging/changelog follows project(VERSION).
  CHECK(steps.at("changelog") == "callbackd (" CALLBACKD_VERSION ") unstable; urgency=medium");
  CHECK(steps.at("docs") == "changelog.gz copyright examples/sql-examples.sql install.md operations.md sql.md ");
  // Nothing enabled or started by the installation.
  CHECK(steps.at("enabled_after_install") == "disabled");
  CHECK(steps.at("active_after_install") == "inactive");
  CHECK(steps.at("version") == "callbackd " CALLBACKD_VERSION);
  CHECK(steps.at("check_config_exit") == "0");
  // The installed unit, unchanged: READY=1, as the dynamic user, ready, a clean stop.
  CHECK(steps.at("started_active") == "active/running");
  CHECK(steps.at("main_user") == "callbackd");
  CHECK(steps.at("readyz").rfind("ok:", 0) == 0);
  CHECK(steps.at("stopped").rfind("success ", 0) == 0);  // SIGTERM drained, exit status 0
  CHECK(steps.at("stopped").substr(steps.at("stopped").size() - 2) == "/0");
}
