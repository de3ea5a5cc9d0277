// What to do with one queued sub-merchant (a callbackd.pending_work entry): send it, mark it
// invalid, or drop the entry because nothing needs sending. The one place where validation
// (desired/validation.h), the send diff (diff.h) and the resync flag are combined, so that
// `run` and `plan` cannot disagree. Pure; never throws.
#pragma once

#include <optional>
#include <string>
#include <string_view>

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
  std::optional<HoldReason> hold;                   // drop
  std::optional<desired::ValidationError> invalid;  // mark_invalid

  // "never_applied", "values_differ", "touched_after_apply", "resync", "invalid", or the
  // hold reason ("in_sync", ...).
  std::string_view reason_name() const;
};

// `notify_url` is desired_callbacks.notify_url (nullopt: NULL, which validates as empty).
// Validation comes first: an invalid row is never sent, not even by a resync. A resync sends a
// row the diff holds as in sync (re-asserting what WeChat Pay should hold), never a row parked
// as failed or invalid: those wait for their desired row to change.
WorkVerdict judge_work_item(std::string_view sub_mchid, const std::optional<std::string>& notify_url,
                            const DesiredCallback& desired, const std::optional<RecordedState>& recorded, bool resync);

}  // namespace callbackd::reconcile
