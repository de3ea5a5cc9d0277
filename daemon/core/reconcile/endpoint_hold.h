// Whether WeChat Pay can be reached at all, and how the daemon sends while it cannot. Pure:
// `now` and the jitter are parameters. Nothing throws (beyond allocation); on_sent without
// permission is a bug and stops the process.
//
// Why endpoint-wide: a failure to REACH the API host (DNS, TCP connect refused or
// unreachable, TLS handshake, a deadline of one of those; engine::reach_of) says nothing
// about the row or the tenant that happened to be sent: it is the same for every request.
// Trying every claimed row at each tenant's paced rate during an outage would be one
// connection attempt and one audit row per row, thousands a minute, all failing the same
// way. The same holds when something else on the path answers INSTEAD of WeChat Pay (a
// forward proxy's or WAF's HTML 403, an empty 413, a gateway's bare 502: an HTTP answer with
// neither WeChat Pay's JSON error body nor its signature headers, wechatpay::Answerer::other):
// it says nothing about the row either. Instead:
//
//   open      every request may go (each tenant's own pacer and state still apply).
//   held      entered on the first unreachable result (reason `unreachable`), or when
//             `not_wechatpay_rows` DIFFERENT rows in a row got an answer that was not WeChat
//             Pay's, with no answer of WeChat Pay's in between (reason `not_wechatpay`; one
//             row alone never holds the path: a WAF may refuse one row's content only).
//             Exactly one probe request may be in flight, and only from next_probe_at on;
//             the wait doubles per failed probe from `initial_backoff` up to `max_backoff`,
//             each jittered down by up to `jitter` (several instances sharing one WeChat Pay
//             account then do not probe in step). A probe that is `reached` (WeChat Pay
//             answered: any status with its error body or signature headers; or the exchange
//             failed after the connection was made) releases the hold; an unreachable or
//             not_wechatpay probe is a failed probe (the reason becomes that of the latest).
//
// What does NOT hold the endpoint: an answer of WeChat Pay's of any status, a read timeout,
// a reset or close after the request was written, an oversized or unparseable response.
// Those are about the request (or the server's state once reached) and are handled per
// row/tenant.
//
// Over an outage of length T the number of requests is at most the ones already in flight
// when it started (plus, for not_wechatpay, the rows that made the streak) plus about
// log2(max/initial) + T / (max_backoff * (1 - jitter)) probes.
//
// Results of requests sent BEFORE the hold (non-probes) neither extend nor release it: only
// a probe, sent after, says something about the endpoint now.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/reconcile/time.h"

namespace callbackd::reconcile {

// How an attempt went, as far as reaching WeChat Pay is concerned.
enum class EndpointReach {
  reached,        // WeChat Pay answered (its error body or signature headers), or the exchange
                  // failed after the connection was made
  not_wechatpay,  // an HTTP answer that was not WeChat Pay's (see above)
  unreachable,    // no connection could be made (see above)
  not_sent,       // nothing was sent (signing failed, key files missing): says nothing
};

// Why the endpoint is held, for logs and metrics ("unreachable", "not_wechatpay").
enum class EndpointHoldReason { unreachable, not_wechatpay };
std::string_view endpoint_hold_reason_name(EndpointHoldReason reason);

struct EndpointHoldTuning {
  Duration initial_backoff = std::chrono::seconds{1};
  Duration max_backoff = std::chrono::seconds{30};
  double jitter = 0.2;  // each wait is uniform in [(1 - jitter) * step, step]
  // Different rows answered by something other than WeChat Pay, one after the other, that hold
  // the path. Small: each of them is a request WeChat Pay never saw; more than one, so that a
  // single row's peculiar answer (a WAF refusing its content) cannot hold everyone.
  int not_wechatpay_rows = 3;
};

// For the scheduler: may a request go at `now`?
struct EndpointPermission {
  bool allowed = true;
  bool probe = false;  // the request would be the held endpoint's probe
  // When not allowed: the instant from which it might be (nullopt: only the probe's
  // completion can change it).
  std::optional<Instant> not_before;
};

enum class EndpointTransition { none, held, released };

class EndpointHold {
 public:
  explicit EndpointHold(EndpointHoldTuning tuning = {});

  bool held() const noexcept { return held_; }
  EndpointHoldReason reason() const noexcept { return reason_; }  // of the current (or last) hold
  Instant held_since() const noexcept { return held_since_; }
  Instant next_probe_at() const noexcept { return next_probe_at_; }
  Duration step() const noexcept { return step_; }
  int failed_probes() const noexcept { return failed_probes_; }  // of the current (or last) hold
  bool probe_in_flight() const noexcept { return probe_in_flight_; }

  EndpointPermission permission(Instant now) const;

  // A request went out at `now`; `probe` must be what permission(now) said.
  void on_sent(Instant now, bool probe);

  // A request came back. `uniform01` in [0, 1] picks the jitter of the next wait (ignored
  // unless one is scheduled); `row` names the row it was about (the sub-merchant), so that
  // only different rows count towards a not_wechatpay hold.
  //   unreachable while open          -> held (unreachable), next probe after initial_backoff
  //   not_wechatpay while open        -> held (not_wechatpay) when it is the
  //                                      not_wechatpay_rows-th different row since the last
  //                                      reached result; none before
  //   reached while open              -> none; the not_wechatpay streak starts over
  //   unreachable / not_wechatpay of the probe -> none; the step doubles (up to max_backoff)
  //   reached of the probe            -> released
  //   not_sent of the probe           -> none; the next probe may go at once
  //   anything else                   -> none
  EndpointTransition on_finished(EndpointReach reach, bool probe, Instant now, double uniform01,
                                 std::string_view row = {});

 private:
  Duration jittered(Duration step, double uniform01) const;
  EndpointTransition hold(EndpointHoldReason reason, Instant now, double uniform01);

  EndpointHoldTuning tuning_;
  bool held_ = false;
  bool probe_in_flight_ = false;
  Instant held_since_{};
  Instant next_probe_at_{};
  Duration step_{};
  int failed_probes_ = 0;
  EndpointHoldReason reason_ = EndpointHoldReason::unreachable;
  std::vector<std::string> not_wechatpay_streak_;  // different rows, since the last reached result
};

}  // namespace callbackd::reconcile
