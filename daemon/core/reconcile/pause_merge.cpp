#include "core/reconcile/pause_merge.h"

namespace callbackd::reconcile {

PauseMerge merge_stored_pause(const PauseMergeInputs& in) {
  if (in.stored_paused)
    return in.is_new || !in.owned || (in.known && !in.locally_paused) ? PauseMerge::restore : PauseMerge::keep;
  return in.known && in.locally_paused && !in.owned ? PauseMerge::resume : PauseMerge::keep;
}

bool resume_when_keys_load(bool is_new, const std::string* stored_error_code) {
  if (!is_new) return true;
  return stored_error_code && *stored_error_code == "CREDENTIALS_INVALID";
}

}  // namespace callbackd::reconcile
