#include "core/progress/row_tally.h"

#include "core/progress/progress_table.h"

namespace callbackd::progress {

void RowTally::set_baseline(const std::string& tenant_id, Counts by_state) {
  tenants_[tenant_id] = std::move(by_state);
}

namespace {

bool settled(std::string_view state) {
  for (const auto& column : kStateColumns)
    if (column.state == state) return true;
  return false;
}

// Takes one row out of `state`; when it has none, out of another unsettled state (the
// baseline saw the row as, say, paused or pending while the daemon knew it as retrying).
// False when no row could be taken: the row is new to the tally.
bool take(RowTally::Counts& counts, std::string_view state) {
  auto exact = counts.find(std::string(state));
  if (exact != counts.end() && exact->second > 0) {
    --exact->second;
    return true;
  }
  if (settled(state)) return false;
  for (auto& [other, rows] : counts) {
    if (rows > 0 && !settled(other)) {
      --rows;
      return true;
    }
  }
  return false;
}

}  // namespace

void RowTally::moved(const std::string& tenant_id, std::string_view from, std::string_view to) {
  Counts& counts = tenants_[tenant_id];
  take(counts, from);
  ++counts[std::string(to)];
}

const RowTally::Counts& RowTally::counts(const std::string& tenant_id) const {
  static const Counts none;
  const auto it = tenants_.find(tenant_id);
  return it == tenants_.end() ? none : it->second;
}

}  // namespace callbackd::progress
