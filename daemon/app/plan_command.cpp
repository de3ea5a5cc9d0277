// `callbackd plan [--detailed-exitcode]`: what `run` would do now, per tenant and per row,
// without sending anything and without claiming (one read-only snapshot, pg/inspect.h).
//
// `run` acts on the work queue (callbackd.pending_work), so the plan reads the queue too and
// judges each entry with the engine's own pure function, reconcile::judge_work_item
// (validation, then the send diff, then the resync flag): plan and run cannot disagree about a
// row. On top of that the tenant's gate: mode observe plans but never sends, mode paused does
// nothing, a tenant paused by the daemon (bad credentials) sends only its probe; their rows are
// listed as held, with why. Rows the tenant's change budget holds (migrations/0008) are listed
// as held too, with a one-line summary of the hosts they move from and to, and how to approve.
//
// Output is bounded: the first kRowsShown rows of each tenant, in the order run would claim
// them, then "... and N more"; the counts always cover every row.
//
// --refresh (plan_refresh.h) then reads back every applied row's live value and lists drift;
// --tenant TENANT limits both to one tenant.
//
// Exit status (Terraform's convention for --detailed-exitcode): 0 nothing to send, 2 at least
// one row would be sent or (--refresh) drifted (rows due later, e.g. waiting on a retry, count: they are part of the
// diff), 1 on error. Rows that would only be marked invalid or dropped do not make it 2: nothing
// would be applied at WeChat Pay. Without the flag: 0 unless an error. A read that failed
// under --refresh is an error (1): the picture is incomplete.
#include <iostream>
#include <sstream>

#include "app/commands.h"
#include "app/console.h"
#include "app/plan_refresh.h"
#include "app/report_text.h"
#include "core/config.h"
#include "core/reconcile/held_changes.h"
#include "core/reconcile/work_verdict.h"
#include "pg/conninfo.h"
#include "pg/inspect.h"
#include "pg/migrator.h"

namespace callbackd::app {

namespace {

constexpr std::size_t kRowsShown = 50;

struct Totals {
  std::size_t send = 0;
  std::size_t invalid = 0;
  std::size_t held = 0;
  std::size_t drop = 0;
};

std::string switch_text(const std::optional<bool>& s) { return s ? (*s ? "true" : "false") : "omit"; }

// Why a tenant's rows are not sent, or "" when they are.
std::string gate_reason(const pg::TenantOverview& t) {
  if (t.tenant.mode == TenantMode::paused) return "tenant mode paused (the operator's stop)";
  if (t.tenant.mode == TenantMode::observe) return "tenant mode observe (plans only, never sends)";
  if (t.pause) {
    std::string why = "tenant paused by error " + printable(t.pause->error_code.empty() ? "-" : t.pause->error_code) +
                      ": " + printable(t.pause->reason) + "; one probe ";
    why += t.pause->probe_in.count() > 0 ? "in " + human_duration(t.pause->probe_in) : "due now";
    return why;
  }
  return {};
}

std::string row_line(const pg::QueuedEntry& e, const reconcile::WorkVerdict& v, bool held) {
  const auto& item = e.item;
  std::ostringstream line;
  const char* action = "drop";
  if (e.held_reason)
    action = "held";
  else if (v.action == reconcile::WorkAction::send)
    action = held ? "held" : "send";
  else if (v.action == reconcile::WorkAction::mark_invalid)
    action = held ? "held" : "invalid";
  line << "  " << action << std::string(8 - std::string_view(action).size(), ' ')
       << "mchid=" << printable(item.sub_mchid);
  if (v.action == reconcile::WorkAction::mark_invalid) {
    line << " reason=invalid message=" << printable(v.invalid->message);
  } else {
    line << " reason=" << v.reason_name() << " notify_url=" << printable(item.notify_url.value_or(""))
         << " switch=" << switch_text(item.desired.push_switch);
    if (item.recorded && item.recorded->applied_notify_url)
      line << " applied_notify_url=" << printable(*item.recorded->applied_notify_url)
           << " applied_switch=" << switch_text(item.recorded->applied_switch);
    else
      line << " applied=none";
  }
  if (e.held_reason)
    line << " (held by the change budget until approved)";
  else if (v.action == reconcile::WorkAction::drop)
    line << " (nothing to send; run settles the entry)";
  if (e.claimed_by)
    line << " (in flight at " << printable(*e.claimed_by) << ")";
  else if (e.due_in.count() > 0)
    line << " (due in " << human_duration(e.due_in) << ")";
  if (item.attempts > 0) line << " (" << item.attempts << " failed attempt(s))";
  return line.str();
}

}  // namespace

int run_plan(const CliRequest& req) {
  const Config config = load_config(req.config_path);
  try {
    pg::Inspector inspector(config.database);
    auto tenants = inspector.tenants();
    // --tenant: the plan (and the refresh) of that tenant only.
    const std::optional<std::string> only =
        req.options.count("--tenant") ? std::optional<std::string>(req.option("--tenant", "")) : std::nullopt;
    if (only) {
      std::erase_if(tenants, [&](const pg::TenantOverview& t) { return t.tenant.tenant_id != *only; });
      if (tenants.empty()) {
        std::cerr << "callbackd: plan: --tenant " << printable(*only)
                  << ": no such tenant in callbackd.tenants (SELECT tenant_id FROM callbackd.tenants)\n";
        return kExitFailure;
      }
    }
    std::cout << "plan: database " << pg::describe_conninfo(config.database.url) << ", " << tenants.size()
              << " tenant(s); nothing is sent\n";
    Totals all;
    for (const auto& t : tenants) {
      const std::string gate = gate_reason(t);
      const bool held = !gate.empty();
      std::cout << "\ntenant " << printable(t.tenant.tenant_id) << " (mode " << tenant_mode_name(t.tenant.mode) << ")";
      if (held) std::cout << ": not sent: " << gate;
      std::cout << "\n";
      Totals mine;
      std::size_t shown = 0;
      std::vector<reconcile::HeldMove> budget_held;
      // The rows go after the held summary, which needs every row: a person judges the change
      // from that line first.
      std::ostringstream rows;
      inspector.for_each_queued(t.tenant.tenant_id, [&](const pg::QueuedEntry& e) {
        const auto v = reconcile::judge_work_item(e.item.sub_mchid, e.item.notify_url, e.item.desired, e.item.recorded,
                                                  e.allowed_hosts, e.item.resync);
        if (e.held_reason) {
          ++mine.held;
          budget_held.push_back(
              {e.item.recorded ? e.item.recorded->applied_notify_url : std::nullopt, e.item.notify_url, 1});
        } else if (v.action == reconcile::WorkAction::drop)
          ++mine.drop;
        else if (held)
          ++mine.held;
        else if (v.action == reconcile::WorkAction::send)
          ++mine.send;
        else
          ++mine.invalid;
        if (shown++ < kRowsShown) rows << row_line(e, v, held) << "\n";
      });
      if (!budget_held.empty())
        std::cout << "  held by the change budget: "
                  << reconcile::with_thousands(static_cast<long long>(budget_held.size()))
                  << " row(s): " << reconcile::held_hosts_summary(budget_held) << "\n  approve: callbackd approve "
                  << printable(t.tenant.tenant_id) << " (or undo: docs/sql.md)\n";
      std::cout << rows.str();
      if (shown > kRowsShown) std::cout << "  ... and " << (shown - kRowsShown) << " more\n";
      if (shown == 0)
        std::cout << "  nothing queued\n";
      else
        std::cout << "  = " << mine.send << " to send, " << mine.invalid << " to mark invalid, " << mine.held
                  << " held, " << mine.drop << " to drop\n";
      all.send += mine.send;
      all.invalid += mine.invalid;
      all.held += mine.held;
      all.drop += mine.drop;
    }
    std::cout << "\nPlan: " << all.send << " to send, " << all.invalid << " to mark invalid, " << all.held
              << " held (tenant observe, paused, paused by error, or by the change budget), " << all.drop
              << " to drop.\n";
    std::optional<RefreshTotals> refreshed;
    if (req.has_flag("--refresh")) {
      const auto rows = inspector.applied_rows(only);
      std::cout << "\nrefresh: reading the live value of " << rows.size() << " applied row(s) at up to "
                << config.wechatpay.read_rate_per_second << " a second (no switch: it cannot be read back)\n";
      refreshed = refresh_live_values(config, tenants, rows, std::cout, Console::stderr_console().is_terminal());
      std::cout << "Refresh: " << refreshed->read << " read, " << refreshed->drift
                << " drift (live notify_url other than the applied one), " << refreshed->unread
                << " could not be read.\n";
      if (refreshed->unread > 0) return kExitFailure;  // the picture is incomplete
    }
    if (req.has_flag("--detailed-exitcode") && (all.send > 0 || (refreshed && refreshed->drift > 0))) return 2;
    return 0;
  } catch (const DatabaseError& e) {
    std::cerr << "callbackd: plan: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace callbackd::app
