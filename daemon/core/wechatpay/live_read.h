// The read call: GET /v3/marketing/favor/callbacks?mchid=M, which answers what WeChat Pay holds
// for a sub-merchant ({"mchid","notify_url"}, both strings). Signed like any v3 call (the
// signed URL includes the query string) and its 2xx verified like a POST's. Pure; never throws.
//
// What it cannot say: the push switch. The answer carries no `switch`, so adoption and drift
// (docs/sql.md, "Live state") compare the notify_url only.
//
// A read is classified exactly like a POST (outcome.h), with two differences:
//  - "nothing set" is an answer, not a failure: WeChat Pay answers a sub-merchant without a
//    setting with 404 RESOURCE_NOT_EXISTS (its error body) or with a 200 whose notify_url is
//    empty; both read as the live value "".
//  - a verified 2xx whose body is not {"notify_url": string} (or names another mchid) tells
//    nothing about the live value: transient (READ_BODY_INVALID), retried like a 5xx. A POST's
//    odd 2xx is applied with a warning because it changed something; a read changed nothing.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/wechatpay/outcome.h"

namespace callbackd::wechatpay {

// "/v3/marketing/favor/callbacks?mchid=M", the mchid percent-encoded (it is digits once
// validated; anything else is encoded rather than trusted).
std::string favor_callbacks_read_target(std::string_view sub_mchid);

struct ReadOutcome {
  // The classification: kind == applied means the read was answered (live_notify_url is set);
  // anything else is the failure, named and handled as a POST's would be.
  Outcome outcome;
  std::optional<std::string> live_notify_url;  // "" when nothing is set
  bool answered() const { return live_notify_url.has_value(); }
};

// `observation` as for classify_attempt (verification filled for a 2xx); `sub_mchid` the
// sub-merchant asked about.
ReadOutcome classify_read(const AttemptObservation& observation, std::string_view sub_mchid);

}  // namespace callbackd::wechatpay
