// What to do with one queued sub-merchant (a callbackd.pending_work entry): send it, mark it
// invalid, or drop the entry because nothing needs sending. The one place where validation
// (desired/validation.h), the send diff (diff.h) and the resync flag are combined, so that
// `run` and `plan` cannot disagree. Pure; never throws.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/desired/notify_host.h"
#include "core/desired/validation.h"
#include "core/reconcile/diff.h"

namespace callbackd::reconcile {

enum class WorkAction {
  send,          // reason: send_reason, or resync
  mark_invalid,  // never sent; invalid carries the validation message
  drop,          // nothing to send (hold says why); the entry is settled without an attempt
};

struct WorkVerdict {
  WorkAction action = WorkAction::drop;
  std::optional<SendReason> send_reason;            // send, when the diff asked for it
  bool resync = false;                              // send only because a full resync queued it
  bool now_allowed = false;                         // send: the row was invalid at this revision only for its host
  std::optional<HoldReason> hold;                   // drop
  std::optional<desired::ValidationError> invalid;  // mark_invalid

  // "never_applied", "values_differ", "touched_after_apply", "resync", "now_allowed",
  // "invalid", or the hold reason ("in_sync", ...).
  std::string_view reason_name() const;
};

// `notify_url` is desired_callbacks.notify_url (nullopt: NULL, which validates as empty);
// `allowed_hosts` the tenant's allowed_notify_hosts (nullopt: NULL, any host).
// Validation comes first, then the host check (desired/notify_host.h): an invalid row is never
// sent, not even by a resync. A resync sends a row the diff holds as in sync (re-asserting what
// WeChat Pay should hold), never a row parked as failed or invalid: those wait for their
// desired row to change. One exception, because the allowed hosts are the tenant's and not
// the row's: a row parked invalid at this revision is judged again (its entry was queued by a
// change of the list) and sent when it passes now, re-recorded when its reason changed, and
// otherwise left parked.
WorkVerdict judge_work_item(std::string_view sub_mchid, const std::optional<std::string>& notify_url,
                            const DesiredCallback& desired, const std::optional<RecordedState>& recorded,
                            const std::optional<desired::AllowedHosts>& allowed_hosts, bool resync);

// Whether sending this verdict would change what WeChat Pay holds for the row: its values
// differ from the ones last applied. A first apply (nothing applied yet), a re-send of equal
// values (a touch, a resync, an undo) and anything not sent do not: they are outside the
// tenant's change budget (tenants.max_changes_per_hour).
bool changes_applied_values(const WorkVerdict& verdict, const DesiredCallback& desired,
                            const std::optional<RecordedState>& recorded);

}  // namespace callbackd::reconcile
