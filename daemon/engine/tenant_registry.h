// The tenants as the run loop knows them: callbackd.tenants read (on start, NOTIFY, SIGHUP,
// a lease acquired), each tenant's keys loaded and kept, its pause by an error applied (from
// the database and to it), its claimed rows buffered, and what the scheduler is told about
// it. Runs on the io_context; reads and writes go through the DbWorker, key files through the
// KeyLoader.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/reconcile/attention.h"
#include "core/reconcile/scheduler.h"
#include "core/reconcile/work.h"
#include "core/tenant.h"
#include "engine/clock.h"
#include "engine/db_worker.h"
#include "engine/key_loader.h"

namespace callbackd::engine {

class RecordBatcher;

struct TenantRuntime {
  TenantRow row;
  // Shared with the requests in flight, so that a re-key or a removed tenant never pulls the
  // keys from under a request that is being verified.
  std::shared_ptr<const TenantCredentials> credentials;
  std::deque<reconcile::WorkItem> buffer;  // claimed, validated, waiting for a slot
  std::set<std::string> in_flight;         // sub-merchants being sent
  std::string credentials_problem;         // why the key files failed to load ("" when they loaded)
  // The load of its key files under way (KeyLoader), if any. Its generation tells its answer
  // from a stale one (the row changed again, or the tenant was removed and re-added, while it
  // ran); `is_new` and the stored pause's code are what the answer is judged with
  // (reconcile::resume_when_keys_load).
  struct KeyLoad {
    std::uint64_t generation = 0;
    bool is_new = false;
    std::optional<std::string> stored_pause_code;
  };
  std::optional<KeyLoad> key_load;
  bool claim_pending = false;
  bool drained = false;  // the last claim found fewer due rows than asked for (cleared by TenantRegistry::wake_up)
  // Tenant ownership (several instances share one database; migrations/0003, 0013,
  // lease_keeper.h): this instance sends for the tenant only while it holds a lease on a share
  // of its rate AND its own clock says the last renewal is recent enough that the lease cannot
  // have lapsed (send_until), and not while handing its last shares over (releasing). It
  // sends at the sum of the rates of the shares it holds and is not handing over.
  bool owned = false;              // holds at least one share
  bool releasing = false;          // every share it holds is being handed over: it stops sending
  std::set<int> shares;            // the shares of its rate held (reconcile::share_rate says how much)
  std::set<int> releasing_shares;  // shares being handed over (given up at the next heartbeat)
  // Other instances' requests its pacer was told of when shares were acquired (audit_log.id ->
  // when sent), so that one is counted once however many shares bring it; kept for a minute.
  std::map<std::int64_t, reconcile::Instant> counted_sends;
  reconcile::Instant send_until{};
  std::optional<TenantMode> scheduled_mode;  // what the scheduler was last told
  int scheduled_rate = 0;                    // the rate it was told with

  // What this instance may send a minute: its shares' rates at the tenant's current rate
  // (those not handed over); the tenant's rate where it holds none (it does not send then).
  int sending_rate_per_minute() const;
  // Certificate mode: when its platform certificates are downloaded next on schedule
  // (CertificateKeeper::on_turn; unset: not computed yet, or not scheduled).
  std::optional<reconcile::Instant> certificates_due;
  // Its certificates whose first use was recorded (platform_certificates.first_used_at) by
  // this instance: each is written once per run, not once per response.
  std::set<std::string> certificates_used;
  std::optional<reconcile::Instant> next_due_at;

  const std::string& id() const { return row.tenant_id; }
};

class TenantRegistry {
 public:
  using Tenants = std::map<std::string, std::unique_ptr<TenantRuntime>>;

  // `config` is the reconciler's (credentials_dir, tenant_probe_interval), read at each use so
  // that a reload applies. `wake` is called when a read or a tenant's keys came back;
  // `on_loaded` once a read was applied and the keys it asked for were loaded
  // (ReconcilerOptions::on_tenants_loaded; may be empty). `run_key_load`: where key files are
  // loaded (KeyLoader::Runner; empty: a thread of the registry's own).
  TenantRegistry(boost::asio::io_context& io, Clock& clock, DbWorker& db, std::weak_ptr<const void> lifetime,
                 const Config& config, reconcile::FairScheduler& scheduler, RecordBatcher& records,
                 std::mt19937_64& random, std::function<void()> wake, std::function<void()> on_loaded,
                 KeyLoader::Runner run_key_load = {});

  // Reads callbackd.tenants and the stored pauses, then applies them: one read at a time (a
  // refresh asked for while one is out is that one).
  void refresh();
  // The next read re-loads every tenant's keys, changed or not (SIGHUP: credentials_dir, or
  // files replaced in place).
  void reload_keys() { reload_keys_ = true; }
  bool loaded() const { return loaded_; }                     // a read has been applied
  std::size_t keys_loading() const { return keys_loading_; }  // tenants whose key load is under way
  // Parsed keys by file content (the dispatcher's probe of a tenant whose keys failed).
  wechatpay::KeyCache& key_cache() { return keys_.cache(); }
  bool refresh_pending() const { return refresh_pending_; }

  Tenants& all() { return tenants_; }
  const Tenants& all() const { return tenants_; }
  TenantRuntime* find(const std::string& tenant_id);
  const TenantRuntime* find(const std::string& tenant_id) const;

  // What the scheduler is to do with the tenant now: its mode, or observe while this
  // instance does not (surely) hold its lease.
  TenantMode scheduled_mode(const TenantRuntime& t, reconcile::Instant now) const;
  // Tells the scheduler when that changed; a tenant that stops sending gives its buffer back,
  // one that starts again is woken. sync_scheduler_all: every tenant (a heartbeat's answer,
  // the leases' send_until passing).
  void sync_scheduler(TenantRuntime& t, reconcile::Instant now);
  void sync_scheduler_all(reconcile::Instant now);
  // The tenant may have due rows it has not claimed (a NOTIFY, the poll, a lease acquired, a
  // hold that gave its buffer back): its next claim is not skipped as drained, and the run loop
  // looks at it again (attention()).
  void wake_up(TenantRuntime& t);
  void wake_up_all();
  // The tenants the run loop looks at on its turn (core/reconcile/attention.h): every tenant
  // read is woken, and whoever changes a tenant's claim inputs wakes it.
  reconcile::Attention& attention() { return attention_; }
  const reconcile::Attention& attention() const { return attention_; }
  // Tells the scheduler how many rows the tenant has buffered.
  void update_due(TenantRuntime& t);
  // Gives the tenant's buffered claims back: the rows become claimable again at once.
  void release_buffer(TenantRuntime& t);
  // Gives back the buffered rows whose claim must not be dispatched any more at `now`
  // (WorkItem::send_by): the oldest, at the buffer's front. Counted in stats.
  void release_expired_claims(TenantRuntime& t, reconcile::Instant now);
  void release_claims(std::vector<std::int64_t> claim_tokens);

  // Pauses the tenant for an error: gives its buffer back, records the event and the pause
  // (whose first probe survives a restart). `restore_in_scheduler`: the scheduler is not yet
  // paused (it pauses itself when a request's outcome did it).
  void pause(const std::string& tenant_id, const std::string& code, const std::string& reason,
             bool restore_in_scheduler);
  // Certificate mode: an applied response verified with the tenant's certificate `serial`;
  // its first use is recorded once per run (platform_certificates.first_used_at).
  void certificate_used(const std::string& tenant_id, const std::string& serial);
  // The scheduler resumed the tenant: the event, the database's copy, the log line.
  void resumed(const std::string& tenant_id, std::string_view reason);

 private:
  void apply(std::vector<TenantRow> rows, std::map<std::string, reconcile::StoredTenantPause> pauses, bool reload_keys);
  // The scheduler's pause of a tenant, read back from the database or cleared there.
  void apply_stored_pause(TenantRuntime& t, bool is_new,
                          const std::map<std::string, reconcile::StoredTenantPause>& pauses, reconcile::Instant now);
  // Asks the KeyLoader for the tenant's keys; until they are back, a tenant without keys
  // neither sends nor is paused for them (scheduled_mode).
  void load_credentials(TenantRuntime& t, bool is_new, bool row_changed,
                        const std::map<std::string, reconcile::StoredTenantPause>& pauses);
  // A key load's answer, on the io_context: applied unless a newer load was asked for meanwhile.
  void keys_loaded(KeysLoaded loaded);
  void apply_credentials(TenantRuntime& t, const TenantRuntime::KeyLoad& load,
                         Result<TenantCredentials, std::vector<Problem>> loaded);
  void forget_key_load(TenantRuntime& t);
  void notify_loaded_when_keys_are();

  boost::asio::io_context& io_;
  Clock& clock_;
  DbWorker& db_;
  std::weak_ptr<const void> lifetime_;
  const Config& config_;
  reconcile::FairScheduler& scheduler_;
  RecordBatcher& records_;
  std::mt19937_64& random_;
  std::function<void()> wake_;
  std::function<void()> on_loaded_;
  Tenants tenants_;
  reconcile::Attention attention_;
  bool loaded_ = false;
  bool refresh_pending_ = false;
  bool reload_keys_ = false;
  std::uint64_t key_generation_ = 0;
  std::size_t keys_loading_ = 0;
  bool on_loaded_pending_ = false;  // a read was applied; on_loaded once its keys are loaded
  // Last: destroyed first, so its thread ends before anything it delivers to.
  KeyLoader keys_;
};

}  // namespace callbackd::engine
