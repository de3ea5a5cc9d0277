// Thin on purpose: parse the command line, dispatch, map errors to exit codes.
#include <iostream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/commands.h"

int main(int argc, char** argv) {
  using namespace callbackd;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = app::parse_cli(args);
  if (!parsed) {
    std::cerr << "callbackd: " << parsed.error().message << "\n";
    return app::kExitUsage;
  }
  const app::CliRequest& req = parsed.value();
  if (req.kind == app::CliRequest::Kind::help) {
    std::cout << app::help_text();
    return 0;
  }
  if (req.kind == app::CliRequest::Kind::version) {
    std::cout << "callbackd " << CALLBACKD_VERSION << "\n";
    return 0;
  }
  try {
    return app::run_command(req);
  } catch (const StartupError& e) {
    for (const auto& p : e.problems()) std::cerr << "callbackd: " << p.to_string() << "\n";
    return app::kExitConfig;
  } catch (const std::exception& e) {
    std::cerr << "callbackd: " << req.command << " failed: " << e.what() << "\n";
    return app::kExitFailure;
  }
}
