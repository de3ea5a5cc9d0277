// libFuzzer target: callbackd-sandbox's YAML — the whole file (parse_sandbox_config) and the
// runtime updates that POST /sandbox/config bodies and SIGHUP carry (parse_runtime_update).
// Property: the only way to refuse is a StartupError naming the source; what is accepted has
// its files resolved against the base directory, usable windows, and fault plans that
// resolve to a real answer for any request.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz_support.h"
#include "sandbox/faults.h"
#include "sandbox/sandbox_config.h"

using namespace callbackd;
using namespace callbackd::sandbox;

namespace {

void check_problems(const StartupError& e, std::string_view source) {
  fuzz::require(!e.problems().empty());
  for (const auto& p : e.problems()) fuzz::require(p.where.starts_with(source));
}

void check_limits(const Limits& l) {
  fuzz::require(l.set_per_minute >= 1 && l.window_1s >= 1 && l.window_60s >= 1 && l.max_body_bytes >= 64);
}

// Every request a plan can meet resolves to a fault the server knows how to carry out.
void check_plan(const FaultPlan& plan) {
  double total = 0;
  for (const auto& rule : plan.random) total += rule.probability;
  fuzz::require(total <= 1.0 + 1e-9);
  auto check_action = [](const FaultAction& a) {
    if (a.kind == FaultKind::error) fuzz::require(a.status >= 400 && a.status <= 599 && !a.code.empty());
  };
  for (const auto& [mchid, rule] : plan.by_sub_merchant) check_action(choose_fault(plan, mchid, 0));
  for (std::uint64_t i = 0; i < 8; ++i) check_action(choose_fault(plan, "fuzz-sub-merchant", i));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const SandboxConfig c = parse_sandbox_config(text, "fuzz.yaml", "/base");
    fuzz::require(c.source == "fuzz.yaml" && !c.tls_certificate_file.empty() && !c.tls_private_key_file.empty());
    fuzz::require(c.tls_certificate_file.front() == '/' && c.platform.private_key_file.front() == '/');
    for (const auto& m : c.merchants)
      fuzz::require(!m.caller_mchid.empty() && !m.serial_no.empty() && m.public_key_file.front() == '/');
    check_limits(c.limits);
    check_plan(c.faults);
  } catch (const StartupError& e) {
    check_problems(e, "fuzz.yaml");
  }
  try {
    const RuntimeUpdate u = parse_runtime_update(text, "POST /sandbox/config");
    if (u.limits) check_limits(*u.limits);
    if (u.faults) check_plan(*u.faults);
  } catch (const StartupError& e) {
    check_problems(e, "POST /sandbox/config");
  }
  // Any other exception escapes and libFuzzer reports it.
  return 0;
}
