// Claims of pending_work: claim_due (one statement for all tenants of a poll), release, drop,
// a resync, and the counts read by metrics. sql/claim_due.sql says how a claim fences.
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/reconcile/work_verdict.h"
#include "pg/queue_rows.h"
#include "pg/store_session.h"

namespace callbackd::pg {

using reconcile::ClaimResult;

namespace {

// The change budget (sql/admit_changes.sql): the claimed rows whose send would change what
// WeChat Pay holds are admitted against it or held; the held ones leave the claim result (they
// are not the caller's any more). Judged with the run loop's own verdict, so a row that `run`
// would not send (invalid, nothing to send) never spends the budget.
void admit_changes(pqxx::connection& c, const std::string& instance, std::uint64_t& statements, ClaimResult& result,
                   int max_changes_per_hour) {
  nlohmann::json changes = nlohmann::json::array();
  std::set<std::string> change_mchids;
  for (std::size_t i = 0; i < result.items.size(); ++i) {
    const WorkItem& item = result.items[i];
    const auto verdict = reconcile::judge_work_item(item.sub_mchid, item.notify_url, item.desired, item.recorded,
                                                    result.allowed_hosts, item.resync);
    if (!reconcile::changes_applied_values(verdict, item.desired, item.recorded)) continue;
    change_mchids.insert(item.sub_mchid);
    changes.push_back({{"ord", i},
                       {"mchid", item.sub_mchid},
                       {"revision", item.desired.revision},
                       {"claim_token", item.claim_token}});
  }
  if (changes.empty()) return;
  pqxx::work tx(c);
  statements += 2;
  tx.exec_prepared("lock_change_budget", result.tenant_id);
  const pqxx::result rows =
      tx.exec_prepared("admit_changes", result.tenant_id, max_changes_per_hour,
                       changes.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), instance);
  tx.commit();
  std::set<std::string> held;
  bool was_holding = true;
  for (const auto& r : rows) {
    const auto verdict = r["verdict"].as<std::string>();
    if (verdict == "held") held.insert(r["mchid"].as<std::string>());
    if (verdict == "tenant") was_holding = r["holding"].as<bool>();
  }
  std::set<std::string> admitted;
  for (const auto& r : rows)
    if (r["verdict"].as<std::string>() == "admitted") admitted.insert(r["mchid"].as<std::string>());
  // A change neither admitted nor held had its row written meanwhile (its claim is gone): it is
  // not sent now, its new revision is claimed and judged anew.
  std::vector<WorkItem> keep;
  for (auto& item : result.items) {
    const bool is_change = change_mchids.count(item.sub_mchid) > 0;
    if (held.count(item.sub_mchid)) {
      result.held_moves.push_back(
          {item.recorded ? item.recorded->applied_notify_url : std::nullopt, item.notify_url, 1});
      continue;
    }
    if (is_change && !admitted.count(item.sub_mchid)) continue;
    keep.push_back(std::move(item));
  }
  result.items = std::move(keep);
  result.held = static_cast<long long>(held.size());
  result.started_holding = !was_holding && !held.empty();
}

}  // namespace

std::vector<ClaimResult> ReconcileStore::claim_due(const std::vector<reconcile::ClaimRequest>& requests,
                                                   std::chrono::milliseconds lease) {
  CALLBACKD_ASSERT(lease.count() > 0);
  std::vector<ClaimResult> results(requests.size());
  if (requests.empty()) return results;
  nlohmann::json batch = nlohmann::json::array();
  std::set<std::string_view> tenants;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    CALLBACKD_ASSERT(requests[i].limit >= 0);
    // Rows are grouped back by tenant: one request per tenant per poll.
    CALLBACKD_ASSERT(tenants.insert(requests[i].tenant_id).second);
    results[i].tenant_id = requests[i].tenant_id;
    batch.push_back({{"ord", i}, {"tenant_id", requests[i].tenant_id}, {"claim_limit", requests[i].limit}});
  }
  const std::string requests_json = batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return impl_->run("claiming due entries of callbackd.pending_work", [&](pqxx::connection& c) {
    const pqxx::result rows = impl_->exec1(c, "claim_due", requests_json, impl_->instance, millis(lease));
    std::vector<std::optional<int>> budgets(results.size());
    std::vector<bool> seen(results.size(), false);
    for (const auto& r : rows) {
      const auto ord = r["ord"].as<std::size_t>();
      CALLBACKD_ASSERT(ord < results.size());
      ClaimResult& result = results[ord];
      if (!seen[ord]) {  // the tenant's columns repeat on each of its rows
        seen[ord] = true;
        result.allowed_hosts = allowed_hosts_from(r["allowed_notify_hosts"]);
        budgets[ord] = optional_field<int>(r["max_changes_per_hour"]);
        result.adopt_existing = r["adopt_existing"].as<bool>();
      }
      if (!r["next_due_in_ms"].is_null() && !result.next_due_in)
        result.next_due_in = std::chrono::milliseconds{r["next_due_in_ms"].as<long long>()};
      if (r["mchid"].is_null()) continue;  // the one row that only carries next_due_in_ms
      WorkItem item = work_item_from(r);
      item.claim_token = r["claim_token"].as<std::int64_t>();
      result.items.push_back(std::move(item));
    }
    for (std::size_t i = 0; i < results.size(); ++i)
      if (budgets[i]) admit_changes(c, impl_->instance, impl_->statements, results[i], *budgets[i]);
    return results;
  });
}

ClaimResult ReconcileStore::claim_due(const std::string& tenant_id, int limit, std::chrono::milliseconds lease) {
  return std::move(claim_due(std::vector<reconcile::ClaimRequest>{{tenant_id, limit}}, lease).front());
}

void ReconcileStore::release(const std::vector<std::int64_t>& claim_tokens) {
  if (claim_tokens.empty()) return;
  // A bigint[] literal: digits and commas only, passed as a parameter, never spliced into SQL.
  std::string array = "{";
  for (std::size_t i = 0; i < claim_tokens.size(); ++i) {
    if (i) array += ',';
    array += std::to_string(claim_tokens[i]);
  }
  array += '}';
  impl_->run("releasing claims in callbackd.pending_work",
             [&](pqxx::connection& c) { impl_->exec1(c, "release_claims", array); });
}

void ReconcileStore::drop(const std::vector<WorkItem>& items) {
  if (items.empty()) return;
  nlohmann::json batch = nlohmann::json::array();
  for (const auto& item : items)
    batch.push_back(
        {{"mchid", item.sub_mchid}, {"claim_token", item.claim_token}, {"revision", item.desired.revision}});
  impl_->run("dropping settled entries of callbackd.pending_work",
             [&](pqxx::connection& c) { impl_->exec1(c, "drop_entries", batch.dump()); });
}

std::size_t ReconcileStore::queue_resync() {
  return impl_->run("queueing a full resync in callbackd.pending_work", [&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    ++impl_->statements;
    return static_cast<std::size_t>(tx.exec_prepared("queue_resync").affected_rows());
  });
}

std::vector<std::string> ReconcileStore::due_tenants() {
  return impl_->run("looking for due entries in callbackd.pending_work", [&](pqxx::connection& c) {
    std::vector<std::string> out;
    for (const auto& r : impl_->exec1(c, "due_tenants", impl_->instance)) out.push_back(r[0].as<std::string>());
    return out;
  });
}

std::size_t ReconcileStore::pending_for_sending_tenants() {
  return impl_->run("counting callbackd.pending_work", [&](pqxx::connection& c) {
    return static_cast<std::size_t>(impl_->exec1(c, "pending_for_sending_tenants")[0][0].as<long long>());
  });
}

// Metrics (app/operations.cpp), every few seconds: one grouped scan of pending_work.

std::vector<reconcile::TenantQueue> ReconcileStore::queue_ages() {
  return impl_->run("reading queue sizes from callbackd.pending_work", [&](pqxx::connection& c) {
    std::vector<reconcile::TenantQueue> out;
    for (const auto& r : impl_->exec1(c, "queue_ages")) {
      reconcile::TenantQueue q;
      q.tenant_id = r["tenant_id"].as<std::string>();
      q.queued = r["queued"].as<long long>();
      q.held = r["held"].as<long long>();
      if (!r["oldest_ms"].is_null())
        q.oldest_pending_change = std::chrono::milliseconds{r["oldest_ms"].as<long long>()};
      out.push_back(std::move(q));
    }
    return out;
  });
}

int ReconcileStore::fold_row_state_changes(int max_rows) {
  return impl_->run("folding changes into callbackd.row_state_totals", [&](pqxx::connection& c) {
    return impl_->exec1(c, "fold_row_state_changes", max_rows)[0][0].as<int>();
  });
}

}  // namespace callbackd::pg
