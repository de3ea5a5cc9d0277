// Retry backoff: bounds and growth, with the randomness injected.
#include <catch2/catch.hpp>

#include <random>

#include "core/reconcile/backoff.h"

using namespace callbackd;
using namespace callbackd::reconcile;
using namespace std::chrono_literals;

TEST_CASE("backoff ceiling doubles per failure from initial and stops at max", "[backoff]") {
  const RetryPolicy policy{1s, 300s};
  CHECK(backoff_ceiling(policy, 1) == 2s);
  CHECK(backoff_ceiling(policy, 2) == 4s);
  CHECK(backoff_ceiling(policy, 3) == 8s);
  CHECK(backoff_ceiling(policy, 8) == 256s);
  CHECK(backoff_ceiling(policy, 9) == 300s);
  CHECK(backoff_ceiling(policy, 1000) == 300s);
  CHECK(backoff_ceiling(policy, 2147483647) == 300s);
  for (int n = 1; n < 40; ++n) CHECK(backoff_ceiling(policy, n + 1) >= backoff_ceiling(policy, n));
}

TEST_CASE("backoff stays within [initial, ceiling] for any randomness", "[backoff]") {
  const RetryPolicy policy{250ms, 60s};
  for (int n = 1; n <= 30; ++n) {
    INFO("failures = " << n);
    CHECK(retry_backoff(policy, n, 0.0) == 250ms);
    CHECK(retry_backoff(policy, n, 1.0) == backoff_ceiling(policy, n));
    std::mt19937_64 rng(static_cast<unsigned>(n));
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < 1000; ++i) {
      const auto d = retry_backoff(policy, n, u(rng));
      if (d < policy.initial_backoff || d > backoff_ceiling(policy, n) || d > policy.max_backoff) {
        FAIL("backoff out of bounds: " << d.count() << " ns");
      }
    }
  }
}

TEST_CASE("backoff grows with the failure count on average and is jittered", "[backoff]") {
  const RetryPolicy policy{1s, 3600s};
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  double previous_mean = 0;
  for (int n = 1; n <= 10; ++n) {
    double sum = 0;
    Duration lowest = Duration::max();
    Duration highest = Duration::min();
    for (int i = 0; i < 2000; ++i) {
      const auto d = retry_backoff(policy, n, u(rng));
      sum += std::chrono::duration<double>(d).count();
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
    }
    const double mean = sum / 2000;
    INFO("failures = " << n << ", mean " << mean << " s");
    CHECK(mean > previous_mean);
    // Full jitter: the spread covers most of [initial, ceiling].
    CHECK(highest - lowest > (backoff_ceiling(policy, n) - policy.initial_backoff) * 8 / 10);
    previous_mean = mean;
  }
}

TEST_CASE("retry policy comes from reconciler config", "[backoff]") {
  ReconcilerConfig config;
  config.retry_initial_backoff = Millis{500};
  config.retry_max_backoff = Millis{10'000};
  const auto policy = RetryPolicy::from_config(config);
  CHECK(policy.initial_backoff == 500ms);
  CHECK(policy.max_backoff == 10s);
  CHECK(retry_backoff(policy, 100, 0.999) <= 10s);
}
