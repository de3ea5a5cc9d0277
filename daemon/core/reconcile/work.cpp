#include "core/reconcile/work.h"

namespace callbackd::reconcile {

AttemptRecord attempt_record_for(const WorkItem& item, std::string_view outcome) {
  AttemptRecord rec;
  rec.tenant_id = item.tenant_id;
  rec.sub_mchid = item.sub_mchid;
  rec.revision = item.desired.revision;
  rec.claim_token = item.claim_token;
  rec.notify_url = item.notify_url;
  rec.push_switch = item.desired.push_switch;
  rec.outcome = std::string(outcome);
  rec.attempt = item.attempts + 1;
  if (item.recorded && item.recorded->revision == item.desired.revision) rec.state_before = item.recorded->state;
  return rec;
}

}  // namespace callbackd::reconcile
