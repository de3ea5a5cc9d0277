#include "engine/key_loader.h"

#include <boost/asio/post.hpp>

namespace callbackd::engine {

KeyLoader::KeyLoader(boost::asio::io_context& io, std::weak_ptr<const void> owner, Deliver deliver, Runner runner)
    : shared_(std::make_shared<Shared>(io, std::move(owner), std::move(deliver))), runner_(std::move(runner)) {
  if (!runner_) thread_ = std::thread([this] { thread_loop(); });
}

KeyLoader::~KeyLoader() {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
    shared_->queued.clear();
  }
  shared_->cv.notify_one();
  if (thread_.joinable()) thread_.join();
}

void KeyLoader::load(KeyLoadRequest request) {
  if (runner_) {
    runner_([shared = shared_, request = std::move(request)]() mutable { run(shared, std::move(request)); });
    return;
  }
  {
    std::lock_guard lock(shared_->mutex);
    shared_->queued.push_back(std::move(request));
  }
  shared_->cv.notify_one();
}

void KeyLoader::thread_loop() {
  for (;;) {
    KeyLoadRequest request;
    {
      std::unique_lock lock(shared_->mutex);
      shared_->cv.wait(lock, [&] { return shared_->stopping || !shared_->queued.empty(); });
      if (shared_->stopping) return;
      request = std::move(shared_->queued.front());
      shared_->queued.pop_front();
    }
    run(shared_, std::move(request));
  }
}

void KeyLoader::run(const std::shared_ptr<Shared>& shared, KeyLoadRequest request) {
  auto credentials = [&]() -> Result<TenantCredentials, std::vector<Problem>> {
    try {
      return load_tenant_credentials(request.row, request.credentials_dir, &shared->cache);
    } catch (const std::exception& e) {
      return std::vector<Problem>{{"tenant '" + request.tenant_id + "'", std::string("keys not loaded: ") + e.what(),
                                   "send SIGHUP to load them again"}};
    }
  }();
  bool post = false;
  {
    std::lock_guard lock(shared->mutex);
    shared->answers.push_back(KeysLoaded{std::move(request.tenant_id), request.generation, std::move(credentials)});
    post = !shared->delivery_posted;
    shared->delivery_posted = true;
  }
  // One task on the io_context per batch of answers, not one per answer.
  if (post) boost::asio::post(shared->io, [shared] { deliver_batch(shared); });
}

void KeyLoader::deliver_batch(const std::shared_ptr<Shared>& shared) {
  std::vector<KeysLoaded> batch;
  bool more = false;
  {
    std::lock_guard lock(shared->mutex);
    while (!shared->answers.empty() && batch.size() < kDeliverBatch) {
      batch.push_back(std::move(shared->answers.front()));
      shared->answers.pop_front();
    }
    more = !shared->answers.empty();
    shared->delivery_posted = more;
  }
  if (shared->owner.expired()) return;
  // The rest after whatever else waits on the io_context (requests, the loop).
  if (more) boost::asio::post(shared->io, [shared] { deliver_batch(shared); });
  for (auto& answer : batch) shared->deliver(std::move(answer));
}

}  // namespace callbackd::engine
