// Tenants' key files, loaded off the io_context. Reading a tenant's keys means opening and
// reading files and, the first time their bytes are seen, decoding and checking the keys
// (about 2 ms a tenant, core/wechatpay/keys.cpp): with 10,000 tenants that is seconds that
// the network thread must not spend, since no tenant sends meanwhile. So loads run on a
// thread of their own, and their answers come back to the io_context in small batches, each
// a short task there: tenants whose keys are loaded send while the others still load.
//
// The seam, as DbWorker's inline mode: where a load runs is a `Runner`. The daemon's is the
// loader's own thread; the engine tests post loads to the io_context (or hold them), so that
// simulated time stays deterministic. Answers reach `deliver` on the io_context in the order
// the loads finished, never after `owner` expired.
#pragma once

#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/tenant.h"
#include "core/wechatpay/key_cache.h"

namespace callbackd::engine {

struct KeyLoadRequest {
  std::string tenant_id;
  std::uint64_t generation = 0;  // the caller's, handed back: it tells a stale answer
  TenantRow row;
  std::string credentials_dir;
};

struct KeysLoaded {
  std::string tenant_id;
  std::uint64_t generation = 0;
  Result<TenantCredentials, std::vector<Problem>> credentials;
};

class KeyLoader {
 public:
  // Runs one load (a function to call once, anywhere). Empty: the loader's own thread.
  using Runner = std::function<void(std::function<void()> load)>;
  using Deliver = std::function<void(KeysLoaded)>;

  KeyLoader(boost::asio::io_context& io, std::weak_ptr<const void> owner, Deliver deliver, Runner runner = {});
  ~KeyLoader();  // loads not yet started are dropped; the one running is finished, not delivered
  KeyLoader(const KeyLoader&) = delete;
  KeyLoader& operator=(const KeyLoader&) = delete;

  // load_tenant_credentials(request.row, request.credentials_dir, &cache()), answered to
  // `deliver` on the io_context. A load that throws (out of memory) is answered as a problem
  // of the tenant's keys, never dropped.
  void load(KeyLoadRequest request);

  // Parsed keys by file content, shared by every load (and the dispatcher's probe).
  wechatpay::KeyCache& cache() { return shared_->cache; }

  // At most this many answers are handed to `deliver` per task on the io_context: each
  // applies one tenant's keys (tens of microseconds), so a batch keeps the io thread busy
  // well under a millisecond before the network gets its turn again.
  static constexpr std::size_t kDeliverBatch = 16;

 private:
  struct Shared {
    Shared(boost::asio::io_context& io_, std::weak_ptr<const void> owner_, Deliver deliver_)
        : io(io_), owner(std::move(owner_)), deliver(std::move(deliver_)) {}
    boost::asio::io_context& io;
    std::weak_ptr<const void> owner;
    Deliver deliver;
    wechatpay::KeyCache cache;
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<KeyLoadRequest> queued;  // the loader's own thread only
    std::deque<KeysLoaded> answers;
    bool delivery_posted = false;
    bool stopping = false;
  };
  static void run(const std::shared_ptr<Shared>& shared, KeyLoadRequest request);
  static void deliver_batch(const std::shared_ptr<Shared>& shared);
  void thread_loop();

  std::shared_ptr<Shared> shared_;
  Runner runner_;
  std::thread thread_;
};

}  // namespace callbackd::engine
