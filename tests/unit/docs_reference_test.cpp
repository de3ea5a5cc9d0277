// The reference pages cannot silently fall behind the code: every config key the parser
// accepts has a row in docs/config.md, and every command and flag of the CLI has its section
// in docs/cli.md (and the README's command table).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "app/cli.h"
#include "core/config.h"

namespace {

std::string read_doc(const std::string& relative) {
  std::ifstream in(std::string(CALLBACKD_SOURCE_DIR) + "/" + relative);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("docs/config.md has a row for every config key") {
  const std::string page = read_doc("docs/config.md");
  for (const auto& key : callbackd::known_config_keys()) {
    INFO("config key " << key);
    CHECK(page.find("| `" + key + "` |") != std::string::npos);
  }
}

TEST_CASE("docs/cli.md and the README describe every command and flag") {
  const std::string cli = read_doc("docs/cli.md");
  const std::string readme = read_doc("README.md");
  for (const auto& spec : callbackd::app::commands()) {
    const std::string name(spec.name);
    INFO("command " << name);
    CHECK(readme.find("| `" + name) != std::string::npos);
    // The command's heading names its argument and every flag and option:
    // "## `approve TENANT`", "## `run [--exit-when-idle] [--progress=...]`".
    const std::string named = spec.argument.empty() ? name : name + " " + std::string(spec.argument);
    const auto at = cli.find("## `" + named);
    REQUIRE(at != std::string::npos);
    const std::string heading = cli.substr(at, cli.find('\n', at) - at);
    CHECK((heading == "## `" + named + "`" || heading.starts_with("## `" + named + " [")));
    for (auto flag : spec.flags) {
      INFO("flag " << flag);
      CHECK(heading.find("[" + std::string(flag) + "]") != std::string::npos);
    }
    for (const auto& option : spec.options) {
      INFO("option " << option.name);
      CHECK(heading.find("[" + std::string(option.name)) != std::string::npos);
    }
  }
  for (const char* status : {"| 0 |", "| 1 |", "| 2 |", "| 64 |", "| 78 |"}) {
    INFO("exit status row " << status);
    CHECK(cli.find(status) != std::string::npos);
  }
}
