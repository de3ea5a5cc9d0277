#include <catch2/catch.hpp>

#include "app/cli.h"

using namespace callbackd::app;

TEST_CASE("the command line is parsed", "[cli]") {
  auto r = parse_cli({"--config", "/tmp/c.yaml", "migrate"});
  REQUIRE(r.ok());
  CHECK(r->kind == CliRequest::Kind::command);
  CHECK(r->command == "migrate");
  CHECK(r->config_path == "/tmp/c.yaml");
  CHECK(r->config_given);

  auto d = parse_cli({"check-config"});
  REQUIRE(d.ok());
  CHECK(d->config_path == "/etc/callbackd/callbackd.yaml");
  CHECK(!d->config_given);
  CHECK(parse_cli({"check-config", "--config=/x.yaml"})->config_path == "/x.yaml");

  CHECK(parse_cli({"--help"})->kind == CliRequest::Kind::help);
  CHECK(parse_cli({"migrate", "--version"})->kind == CliRequest::Kind::version);
}

TEST_CASE("usage errors name the argument and what is accepted", "[cli]") {
  struct Row {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Row> rows = {
      {{}, "no command given; the commands are: migrate, check-config"},
      {{"frobnicate"}, "unknown command 'frobnicate'; the commands are: migrate"},
      {{"--config"}, "--config needs a file path"},
      {{"--config=", "migrate"}, "--config needs a non-empty file path"},
      {{"migrate", "--exit-when-idle"}, "'migrate' does not take '--exit-when-idle'"},
      {{"run", "--detailed-exitcode"}, "'run' does not take '--detailed-exitcode'"},
      {{"--verbose", "migrate"}, "unknown option '--verbose'"},
      {{"run", "--progress=sometimes"}, "'run --progress' takes auto|always|never, not 'sometimes'"},
      {{"run", "--progress"}, "'run --progress' takes auto|always|never, not ''"},
      {{"status", "--watch", "--interval", "2"}, "'status --interval' takes DURATION (200ms to 1h), not '2'"},
      {{"status", "--interval=10ms"}, "'status --interval' takes DURATION (200ms to 1h), not '10ms'"},
      {{"plan", "--progress=auto"}, "'plan' does not take '--progress=auto'"},
  };
  for (const auto& row : rows) {
    auto r = parse_cli(row.args);
    REQUIRE(!r.ok());
    INFO(r.error().message);
    CHECK(r.error().message.find(row.message) == 0);
  }
}

TEST_CASE("options take a value after '=' or as the next argument", "[cli]") {
  auto run = parse_cli({"run", "--progress=never", "--exit-when-idle"});
  REQUIRE(run.ok());
  CHECK(run->option("--progress", "auto") == "never");
  CHECK(run->has_flag("--exit-when-idle"));
  CHECK(parse_cli({"run"})->option("--progress", "auto") == "auto");
  auto watch = parse_cli({"status", "--watch", "--interval", "500ms"});
  REQUIRE(watch.ok());
  CHECK(watch->has_flag("--watch"));
  CHECK(watch->option("--interval", "2s") == "500ms");
}

TEST_CASE("--help lists every command", "[cli]") {
  const std::string help = help_text();
  for (const auto& spec : commands()) CHECK(help.find("  " + std::string(spec.name)) != std::string::npos);
  CHECK(help.find("CALLBACKD_DATABASE_URL") != std::string::npos);
  CHECK(help.find("--progress=auto|always|never") != std::string::npos);
  CHECK(help.find("--interval=DURATION") != std::string::npos);
}
