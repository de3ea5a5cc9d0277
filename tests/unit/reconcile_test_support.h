// Shared by the reconcile/*_test.cpp files: simulated time and the window checker.
#pragma once

#include <cstddef>
#include <vector>

#include "core/reconcile/scheduler.h"
#include "core/reconcile/time.h"

namespace callbackd::reconcile::testing {

using namespace std::chrono_literals;

// Far from the epoch, like a real steady clock after some uptime.
inline const Instant kStart = Instant{} + 1000h;

// True when every limit+1 consecutive times span at least `span`: then no half-open window
// of length `span` holds more than `limit` of them (the pacer's guarantee, see pacer.h).
inline bool spans_at_least(const std::vector<Instant>& times, std::size_t limit, Duration span) {
  for (std::size_t i = 0; i + limit < times.size(); ++i) {
    if (times[i + limit] - times[i] < span) return false;
  }
  return true;
}

inline FinishedAttempt finished(wechatpay::OutcomeKind outcome, Instant sent_at, bool probe = false) {
  FinishedAttempt attempt;
  attempt.outcome = outcome;
  attempt.sent_at = sent_at;
  attempt.probe = probe;
  return attempt;
}

}  // namespace callbackd::reconcile::testing
