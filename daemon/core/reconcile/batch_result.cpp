#include "core/reconcile/batch_result.h"

#include <string_view>

namespace callbackd::reconcile {

namespace {

long long rows_in(const TenantRowsAfterRun& t, std::string_view state) {
  const auto it = t.by_state.find(std::string(state));
  return it == t.by_state.end() ? 0 : it->second;
}

long long rows_not_in_sync(const TenantRowsAfterRun& t) {
  long long n = 0;
  for (const auto& [state, rows] : t.by_state)
    if (state != "in_sync") n += rows;
  return n;
}

std::string rows_text(long long n) { return std::to_string(n) + (n == 1 ? " row" : " rows"); }

// "3 rows failed (t2: 2 PARAM_ERROR, 1 MCH_NOT_EXISTS; t3: 1 SYSTEM_ERROR)": per tenant, its
// error codes of that state (or only the count when no code was recorded).
std::string state_part(const std::vector<TenantRowsAfterRun>& apply, std::string_view state, std::string_view verb) {
  long long total = 0;
  std::string detail;
  for (const auto& t : apply) {
    if (t.paused_by_error) continue;  // named as a paused tenant
    const long long n = rows_in(t, state);
    if (n == 0) continue;
    total += n;
    std::string codes;
    long long with_code = 0;
    for (const auto& e : t.by_error)
      if (e.state == state && !e.error_code.empty()) {
        codes += (codes.empty() ? "" : ", ") + std::to_string(e.rows) + " " + e.error_code;
        with_code += e.rows;
      }
    if (with_code < n) codes += (codes.empty() ? "" : ", ") + std::to_string(n - with_code);
    detail += (detail.empty() ? "" : "; ") + t.tenant_id + ": " + codes;
  }
  if (total == 0) return {};
  return rows_text(total) + " " + std::string(verb) + " (" + detail + ")";
}

}  // namespace

BatchResult judge_batch(const std::vector<TenantRowsAfterRun>& tenants) {
  std::vector<TenantRowsAfterRun> apply;
  std::string held_by_operator;
  for (const auto& t : tenants) {
    if (t.mode == TenantMode::apply) {
      apply.push_back(t);
    } else if (const long long n = rows_not_in_sync(t); n > 0) {
      held_by_operator += (held_by_operator.empty() ? "" : ", ") + t.tenant_id + " (mode " +
                          std::string(tenant_mode_name(t.mode)) + ", " + rows_text(n) + " not in sync)";
    }
  }

  std::vector<std::string> left;
  for (const auto& t : apply)
    if (t.paused_by_error)
      left.push_back("tenant " + t.tenant_id + " paused (" + *t.paused_by_error + ", " +
                     rows_text(rows_not_in_sync(t)) + " not in sync)");
  for (const auto& [state, verb] :
       std::vector<std::pair<std::string_view, std::string_view>>{{"failed", "failed"},
                                                                  {"invalid", "invalid"},
                                                                  {"held", "held for approval"},
                                                                  {"retrying", "retrying"},
                                                                  {"pending", "pending"},
                                                                  {"paused", "paused"}})
    if (auto part = state_part(apply, state, verb); !part.empty()) left.push_back(std::move(part));

  BatchResult result;
  if (left.empty()) {
    result.summary = "callbackd: idle, every row of every tenant in mode apply is in sync";
  } else {
    result.exit_status = kExitWorkLeft;
    result.summary = "callbackd: idle with work left: ";
    for (std::size_t i = 0; i < left.size(); ++i) result.summary += (i ? ", " : "") + left[i];
  }
  if (!held_by_operator.empty()) result.summary += "; not sent, by the operator's choice: " + held_by_operator;
  return result;
}

}  // namespace callbackd::reconcile
