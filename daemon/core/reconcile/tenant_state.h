// The state machine of one tenant (calling merchant), as far as sending is concerned. Pure:
// `now` is a parameter. Nothing throws (beyond allocation); misuse (on_sent without permission,
// on_finished without on_sent) is a bug and stops the process.
//
//   mode apply    active            sends, up to in_flight_limit() requests at a time
//                 paused_by_error   a tenant_error paused it (bad credentials, wrong response
//                                   keys: every row would fail the same way). One probe
//                                   request at a time, the first after at most 15 s, then
//                                   each wait doubled up to tenant_probe_interval
//                                   (TenantProbeTuning); a probe that is applied (a verified
//                                   2xx proves both the signing key and the response keys)
//                                   resumes the tenant; anything else keeps it paused until
//                                   the next probe. So a one-off (one response whose
//                                   signature did not verify) costs seconds of sending, and
//                                   a wrong key still costs one request per interval.
//   mode observe  plans, never sends (the `plan` view of what would happen)
//   mode paused   nothing: neither plans nor sends (the operator's stop)
//
// tenants.mode is the operator's; the error pause is the daemon's (tenant_state). They are
// independent: an operator can switch a broken tenant to observe, and a pause found while
// in apply mode survives a detour through observe.
//
// Every request handed out by on_sent() must come back through on_finished() exactly once
// (the HTTPS client always ends an attempt, at the latest by its deadline): the in-flight
// count and the single outstanding probe depend on it.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "core/reconcile/time.h"
#include "core/tenant.h"
#include "core/wechatpay/outcome.h"

namespace callbackd::reconcile {

// callbackd.tenant_state, as the daemon keeps it.
struct TenantPause {
  std::string error_code;  // the outcome's error code ("SIGN_ERROR", "RESPONSE_SIGNATURE_...")
  std::string reason;      // the outcome's message, for the operator
  Instant paused_at{};
  Instant next_probe_at{};
  // The current step of the probe backoff; zero (a pause read back from the database, which
  // does not keep it): the first step.
  Duration probe_step{};
};

// How a paused tenant's probes are spaced. The first waits `first_probe` (at most the
// configured interval); each probe that fails doubles the step, up to tenant_probe_interval.
// Below the interval each wait is jittered down by up to `jitter`, so tenants paused together
// (one platform key rotated for all) do not probe in step; at the interval the wait is exact:
// the operator's bound on quota spent on a tenant that stays broken.
struct TenantProbeTuning {
  Duration first_probe = std::chrono::seconds{15};
  double jitter = 0.2;
};

// The wait before the next probe, for backoff `step` under `probe_interval` and a uniform
// `jitter01` in [0, 1] (clamped).
Duration probe_wait(Duration step, Duration probe_interval, double jitter01, const TenantProbeTuning& tuning = {});
// The wait before a new pause's first probe.
inline Duration first_probe_wait(Duration probe_interval, double jitter01, const TenantProbeTuning& tuning = {}) {
  return probe_wait(std::min(tuning.first_probe, probe_interval), probe_interval, jitter01, tuning);
}

// Whether the tenant may send one more request at `now`.
struct SendPermission {
  bool allowed = false;
  bool probe = false;  // the request would be the paused tenant's probe
  // When not allowed: the instant from which it might be (nullopt: not by the passing of
  // time; by a completion, or by the operator changing the mode).
  std::optional<Instant> not_before;
};

enum class TenantTransition { none, paused, resumed };

class TenantState {
 public:
  // In-flight limit: min(tenant_max_in_flight, config_max_in_flight_per_tenant), at least 1
  // (tenants.max_in_flight and reconciler.max_in_flight_per_tenant).
  TenantState(TenantMode mode, int tenant_max_in_flight, int config_max_in_flight_per_tenant, Duration probe_interval,
              TenantProbeTuning probe_tuning = {});

  void set_mode(TenantMode mode) { mode_ = mode; }
  void set_max_in_flight(int tenant_max_in_flight, int config_max_in_flight_per_tenant);
  // A config reload: applies from the next pause or probe (a probe already scheduled keeps
  // its time).
  void set_probe_interval(Duration probe_interval);

  TenantMode mode() const noexcept { return mode_; }
  bool plans() const noexcept { return mode_ != TenantMode::paused; }
  bool sends() const noexcept { return mode_ == TenantMode::apply; }
  bool paused_by_error() const noexcept { return pause_.has_value(); }
  const std::optional<TenantPause>& pause() const noexcept { return pause_; }
  int in_flight() const noexcept { return in_flight_; }
  int in_flight_limit() const noexcept { return in_flight_limit_; }
  bool probe_in_flight() const noexcept { return probe_in_flight_; }

  SendPermission permission(Instant now) const;

  // A request went out at `now`. `probe` must be what permission(now) said; asserts it was
  // allowed. No other probe goes until this one has come back (on_finished).
  void on_sent(Instant now, bool probe);

  // A request handed out by on_sent came back with `outcome` at `now`. Returns what changed
  // for the tenant, so that the caller persists tenant_state and logs it. `jitter01` is
  // uniform in [0, 1]: the jitter of the probe wait (probe_wait; 0: none).
  //   tenant_error while active       -> paused (first probe at now + probe_wait(first step))
  //   applied of the probe            -> resumed
  //   the probe, not applied          -> none; the step doubles (up to the interval) and the
  //                                      next probe is at now + probe_wait(step)
  //   anything else                   -> none (a paused tenant stays paused; an applied
  //                                      result of a request sent before the pause does not
  //                                      resume it: only the probe, sent after, proves a fix)
  TenantTransition on_finished(wechatpay::OutcomeKind outcome, bool probe, Instant now, std::string_view error_code,
                               std::string_view reason, double jitter01 = 0.0);

  // The operator changed the tenant (keys, serial): try again at once, as if never paused.
  void resume() { pause_.reset(); }
  // A pause read back from tenant_state at start-up (so a restart does not hammer a broken
  // tenant).
  void restore_pause(TenantPause pause);

 private:
  Duration first_step() const { return std::min(probe_tuning_.first_probe, probe_interval_); }

  TenantMode mode_;
  int in_flight_limit_;
  Duration probe_interval_;
  TenantProbeTuning probe_tuning_;
  int in_flight_ = 0;
  bool probe_in_flight_ = false;
  std::optional<TenantPause> pause_;
};

}  // namespace callbackd::reconcile
