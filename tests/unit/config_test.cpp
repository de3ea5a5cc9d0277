// Config validation, table-driven from tests/data/config/{valid,invalid}/*.yaml.
// Each invalid file lists the problems it must produce as "# expect: <text>" lines: the
// error must contain every one of them, and exactly that many problems must be reported.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/config.h"
#include "core/error.h"

namespace fs = std::filesystem;
using namespace callbackd;

namespace {
std::optional<std::string> no_env(const char*) { return std::nullopt; }

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> files_in(const std::string& sub) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(CALLBACKD_TEST_DATA) / "config" / sub)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST_CASE("every valid config file loads", "[config]") {
  auto files = files_in("valid");
  REQUIRE(files.size() >= 3);
  for (const auto& f : files) {
    INFO(f.string());
    CHECK_NOTHROW(load_config(f.string(), &no_env));
  }
}

TEST_CASE("every invalid config file names each of its problems", "[config]") {
  auto files = files_in("invalid");
  REQUIRE(files.size() >= 8);
  for (const auto& f : files) {
    INFO(f.string());
    std::vector<std::string> expected;
    std::istringstream lines(slurp(f));
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("# expect: ")) expected.push_back(line.substr(10));
    REQUIRE(!expected.empty());
    try {
      load_config(f.string(), &no_env);
      FAIL("expected a StartupError");
    } catch (const StartupError& e) {
      const std::string message = e.what();
      INFO(message);
      for (const auto& want : expected) CHECK(message.find(want) != std::string::npos);
      // A syntax error is one problem described by two expectations (position, reason).
      if (f.filename() != "syntax.yaml") CHECK(e.problems().size() == expected.size());
      for (const auto& p : e.problems()) CHECK(p.where.find(f.string()) == 0);
    }
  }
}

TEST_CASE("values and defaults are read", "[config]") {
  Config c = load_config(std::string(CALLBACKD_TEST_DATA) + "/config/valid/full.yaml", &no_env);
  CHECK(c.database.url == "postgresql://callbackd@db.internal/callbackd");
  CHECK(c.database.connect_timeout == Millis{3000});
  CHECK(c.wechatpay.base_url == "https://127.0.0.1:8443");
  CHECK(c.wechatpay.backup_url.empty());
  CHECK(c.wechatpay.ca_file == std::optional<std::string>("/etc/callbackd/sandbox-ca.pem"));
  CHECK(c.wechatpay.max_response_bytes == 32768);
  CHECK(c.reconciler.resync_interval == Millis{24 * 3'600'000});
  CHECK(c.reconciler.global_rate_per_second == Approx(150.5));
  CHECK(c.reconciler.retry_initial_backoff == Millis{500});
  CHECK(c.reconciler.shutdown_grace == Millis{0});
  CHECK(c.metrics.listen == "[::1]:9100");
  CHECK(c.log.format == LogConfig::Format::json);
  CHECK(c.credentials_dir == "/run/credentials/callbackd.service");

  Config d = parse_config("database: {url: x}\n", "inline", &no_env);
  CHECK(d.wechatpay.base_url == "https://api.mch.weixin.qq.com");
  CHECK(d.wechatpay.backup_url == "https://api2.wechatpay.cn");
  CHECK(!d.wechatpay.ca_file);
  CHECK(d.reconciler.resync_interval == Millis{0});
  CHECK(d.metrics.listen == "127.0.0.1:9464");
  CHECK(d.log.level == "info");
  CHECK(d.credentials_dir.empty());
  CHECK(!d.wechatpay.egress_rate_per_minute);
  CHECK(d.wechatpay.source_addresses.empty());

  Config e = load_config(std::string(CALLBACKD_TEST_DATA) + "/config/valid/egress.yaml", &no_env);
  CHECK(e.wechatpay.egress_rate_per_minute == std::optional<int>(5));
  CHECK(e.wechatpay.source_addresses == std::vector<std::string>{"203.0.113.7", "2001:db8::7"});
  // 0 is "no cap", as the example file writes it.
  CHECK(!parse_config("database: {url: x}\nwechatpay: {egress_rate_per_minute: 0}\n", "inline", &no_env)
             .wechatpay.egress_rate_per_minute);
}

// The backup defaults to production's only for production's base_url; a local or private
// base_url with a production backup is refused (a rehearsal would fail over to production).
TEST_CASE("wechatpay.backup_url: defaulted for production only, refused for a rehearsal", "[config]") {
  const struct {
    std::string wechatpay;  // the wechatpay section's lines
    const char* backup;     // the backup_url that results; nullptr: refused
  } rows[] = {
      {"", "https://api2.wechatpay.cn"},
      {"  base_url: https://api.mch.weixin.qq.com\n", "https://api2.wechatpay.cn"},
      {"  base_url: https://API.mch.weixin.qq.com\n", "https://api2.wechatpay.cn"},
      {"  base_url: https://api.mch.weixin.qq.com:443\n", "https://api2.wechatpay.cn"},
      {"  base_url: https://api.mch.weixin.qq.com\n  backup_url: \"\"\n", ""},
      {"  base_url: https://api2.wechatpay.cn\n", ""},  // would fail over to itself
      // A sandbox that forgets the line: no failover at all (the defect: api2.wechatpay.cn).
      {"  base_url: https://127.0.0.1:8443\n", ""},
      {"  base_url: https://[::1]:8443\n", ""},
      {"  base_url: https://localhost:8443\n", ""},
      {"  base_url: https://10.0.0.7:8443\n", ""},
      {"  base_url: https://sandbox.example.com\n", ""},
      {"  base_url: https://api.mch.weixin.qq.com:8443\n", ""},
      // A second sandbox as the backup: a failover rehearsal.
      {"  base_url: https://127.0.0.1:8443\n  backup_url: https://127.0.0.1:8444\n", "https://127.0.0.1:8444"},
      // A base_url DNS places anywhere: what it is cannot be told from its name; allowed.
      {"  base_url: https://sandbox.example.com\n  backup_url: https://api2.wechatpay.cn\n",
       "https://api2.wechatpay.cn"},
      // Refused: loopback or private base_url, production backup (any of its names).
      {"  base_url: https://127.0.0.1:8443\n  backup_url: https://api2.wechatpay.cn\n", nullptr},
      {"  base_url: https://127.0.0.1:8443\n  backup_url: https://api.mch.weixin.qq.com\n", nullptr},
      {"  base_url: https://127.0.0.1:8443\n  backup_url: https://api2.mch.weixin.qq.com\n", nullptr},
      {"  base_url: https://[::1]:8443\n  backup_url: https://api2.wechatpay.cn\n", nullptr},
      {"  base_url: https://127.1:8443\n  backup_url: https://api2.wechatpay.cn\n", nullptr},
      {"  base_url: https://sandbox.localhost\n  backup_url: https://api2.wechatpay.cn\n", nullptr},
      {"  base_url: https://10.1.2.3\n  backup_url: https://api2.wechatpay.cn\n", nullptr},
      {"  base_url: https://172.20.0.2:8443\n  backup_url: https://api2.wechatpay.cn\n", nullptr},
      {"  base_url: https://[fd12::5]:8443\n  backup_url: https://api2.wechatpay.cn\n", nullptr},
      {"  base_url: https://sandbox.local:8443\n  backup_url: https://api2.wechatpay.cn\n", nullptr},
  };
  for (const auto& row : rows) {
    const std::string yaml = "database: {url: x}\n" + (row.wechatpay.empty() ? "" : "wechatpay:\n" + row.wechatpay);
    CAPTURE(yaml);
    if (row.backup) {
      CHECK(parse_config(yaml, "inline", &no_env).wechatpay.backup_url == row.backup);
      continue;
    }
    try {
      parse_config(yaml, "inline", &no_env);
      FAIL("expected a StartupError");
    } catch (const StartupError& e) {
      const std::string message = e.what();
      CAPTURE(message);
      REQUIRE(e.problems().size() == 1);
      CHECK(message.find("inline: wechatpay.backup_url: is WeChat Pay's production host") == 0);
      CHECK(message.find("wechatpay.base_url") != std::string::npos);
      CHECK(message.find("set wechatpay.backup_url: \"\"") != std::string::npos);
    }
  }
}

TEST_CASE("the environment overrides database.url and supplies credentials_dir", "[config]") {
  auto env = [](const char* name) -> std::optional<std::string> {
    if (std::string(name) == "CALLBACKD_DATABASE_URL") return "host=/tmp dbname=override";
    if (std::string(name) == "CREDENTIALS_DIRECTORY") return "/run/credentials/callbackd.service";
    return std::nullopt;
  };
  Config c = parse_config("database: {url: 'dbname=file'}\n", "inline", env);
  CHECK(c.database.url == "host=/tmp dbname=override");
  CHECK(c.credentials_dir == "/run/credentials/callbackd.service");
  // With the variable set, the key may be left out of the file altogether.
  CHECK_NOTHROW(parse_config("log: {level: warn}\n", "inline", env));
  // An explicit credentials_dir beats the variable.
  CHECK(parse_config("credentials_dir: /srv/keys\n", "inline", env).credentials_dir == "/srv/keys");
}

TEST_CASE("a missing or non-file config path is named with the fix", "[config]") {
  const auto dir = std::filesystem::temp_directory_path() / ("callbackd-config-dir-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const struct {
    std::string path;
    std::string starts;  // the message
    std::string fix;
  } rows[] = {
      {"/nonexistent/callbackd.yaml", "/nonexistent/callbackd.yaml: cannot read the config file",
       "callbackd.example.yaml"},
      // Read as an empty file it would be "database.url: is required": the wrong problem.
      {dir.string(), dir.string() + ": is a directory, not a config file", "pass --config FILE"},
      {"/dev/null", "/dev/null: is not a regular file", "pass --config FILE"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.path);
    try {
      load_config(row.path, &no_env);
      FAIL("expected a StartupError");
    } catch (const StartupError& e) {
      CHECK(std::string(e.what()).find(row.starts) == 0);
      CHECK(std::string(e.what()).find(row.fix) != std::string::npos);
    }
  }
  std::filesystem::remove_all(dir);
}

// The example file is the documentation of every key: it must load, name every key the
// parser accepts, and name nothing else.
TEST_CASE("config/callbackd.example.yaml documents exactly the accepted keys", "[config]") {
  const std::string path = std::string(CALLBACKD_SOURCE_DIR) + "/config/callbackd.example.yaml";
  CHECK_NOTHROW(load_config(path, &no_env));
  std::set<std::string> documented;
  std::function<void(const YAML::Node&, const std::string&)> walk = [&](const YAML::Node& n,
                                                                        const std::string& prefix) {
    for (const auto& kv : n) {
      std::string key = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
      if (kv.second.IsMap())
        walk(kv.second, key);
      else
        documented.insert(key);
    }
  };
  walk(YAML::LoadFile(path), "");
  std::set<std::string> accepted(known_config_keys().begin(), known_config_keys().end());
  CHECK(documented == accepted);
}
