// Which pause state of a tenant holds when the tenants are read again (pause_merge.h): the
// database's, or this instance's.
#include <catch2/catch.hpp>

#include "core/reconcile/pause_merge.h"

using namespace callbackd::reconcile;

TEST_CASE("pause merge: the database's pause wins unless this instance owns the tenant", "[pause_merge]") {
  struct Row {
    const char* situation;
    PauseMergeInputs in;  // stored_paused, is_new, owned, known, locally_paused
    PauseMerge expected;
  };
  for (const auto& r : std::vector<Row>{
           {"start-up, stored pause: restored (no hammering a paused tenant)",
            {true, true, false, true, false},
            PauseMerge::restore},
           {"start-up and owned, stored pause: still restored", {true, true, true, true, false}, PauseMerge::restore},
           {"not ours, stored pause: the owner's state", {true, false, false, true, true}, PauseMerge::restore},
           {"ours, paused here too: our live pause stays", {true, false, true, true, true}, PauseMerge::keep},
           {"ours, not paused here: another owner paused it", {true, false, true, true, false}, PauseMerge::restore},
           {"ours, unknown to the scheduler: nothing to merge into",
            {true, false, true, false, false},
            PauseMerge::keep},
           {"not ours, paused here, none stored: the owner resumed it",
            {false, false, false, true, true},
            PauseMerge::resume},
           {"ours, paused here, none stored (not written yet): stays",
            {false, false, true, true, true},
            PauseMerge::keep},
           {"not ours, not paused, none stored", {false, false, false, true, false}, PauseMerge::keep},
           {"new tenant, none stored", {false, true, false, false, false}, PauseMerge::keep}}) {
    INFO(r.situation);
    CHECK(merge_stored_pause(r.in) == r.expected);
  }
}

TEST_CASE("pause merge: keys that load lift a pause when they changed or were the problem", "[pause_merge]") {
  const std::string credentials_invalid = "CREDENTIALS_INVALID";
  const std::string sign_error = "SIGN_ERROR";
  struct Row {
    const char* situation;
    bool is_new;
    const std::string* stored_error_code;
    bool resume;
  };
  for (const auto& r :
       std::vector<Row>{{"keys changed (or SIGHUP) on a known tenant", false, nullptr, true},
                        {"known tenant, a stored pause of any kind", false, &sign_error, true},
                        {"start-up, key files that failed load now", true, &credentials_invalid, true},
                        {"start-up, SIGN_ERROR: loading keys can still be the wrong ones", true, &sign_error, false},
                        {"start-up, nothing stored", true, nullptr, false}}) {
    INFO(r.situation);
    CHECK(resume_when_keys_load(r.is_new, r.stored_error_code) == r.resume);
  }
}
