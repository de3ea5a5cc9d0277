// libFuzzer target: the daemon's YAML configuration (parse_config), from any bytes.
// Property: the only way to refuse is a StartupError whose every problem names the file;
// anything accepted respects the bounds parse_config promises (config/callbackd.example.yaml).
#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "fuzz_support.h"

using namespace callbackd;

namespace {
// No environment: CALLBACKD_DATABASE_URL must come from the YAML, so every input exercises the
// "required" checks the same way whatever the fuzzing machine's environment holds.
std::optional<std::string> no_env(const char*) { return std::nullopt; }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const Config c = parse_config(text, "fuzz.yaml", &no_env);
    fuzz::require(c.source_path == "fuzz.yaml" && !c.database.url.empty());
    fuzz::require(c.reconciler.retry_initial_backoff <= c.reconciler.retry_max_backoff);
    fuzz::require(c.wechatpay.max_connections_per_host >= 1 && c.reconciler.max_in_flight_per_tenant >= 1);
    fuzz::require(c.credentials_dir.empty() || c.credentials_dir.front() == '/');
  } catch (const StartupError& e) {
    fuzz::require(!e.problems().empty());
    for (const auto& p : e.problems()) fuzz::require(p.where.starts_with("fuzz.yaml"));
  }
  // Any other exception escapes and libFuzzer reports it: parse_config must not throw it.
  return 0;
}
