// Which pause state of a tenant holds when its row is (re)read from the database: the one
// stored there (callbackd.tenant_pauses, written by the tenant's owner) or this instance's
// scheduler's. Pure; never throws.
//
// The database's pause state wins for tenants this instance does not send for (their owner
// keeps it) and at start-up (a restart must not hammer a tenant that was paused for bad
// credentials). For a tenant it owns, this instance's own pause is the live one: a stored
// pause only replaces a local state that is not paused.
#pragma once

#include <string>

namespace callbackd::reconcile {

enum class PauseMerge {
  keep,     // leave the scheduler's state as it is
  restore,  // take the stored pause (TenantPause from the stored code, reason, probe_in)
  resume,   // the owner resumed it: lift the local pause
};

struct PauseMergeInputs {
  bool stored_paused = false;   // the database holds a pause for the tenant
  bool is_new = false;          // first read of this tenant by this instance (start-up)
  bool owned = false;           // this instance holds the tenant's lease
  bool known = false;           // the scheduler has a state for the tenant
  bool locally_paused = false;  // ...and it is paused by an error
};

PauseMerge merge_stored_pause(const PauseMergeInputs& in);

// After the tenant's key files loaded: whether a pause by the daemon (if any) is lifted.
// Yes when the operator changed its keys (or sent SIGHUP) on a tenant already known, or, at
// start-up, when the stored pause was for key files that failed to load
// (CREDENTIALS_INVALID) and they load now. A pause for SIGN_ERROR read back at start-up
// stays: keys that load can still be the wrong ones.
bool resume_when_keys_load(bool is_new, const std::string* stored_error_code);

}  // namespace callbackd::reconcile
