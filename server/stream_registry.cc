#include "server/stream_registry.h"

#include <utility>
#include <vector>

namespace rtnq::server {

std::optional<uint64_t> StreamRegistry::TryAdd(std::weak_ptr<StreamHandle> stream,
                                               int max_streams) {
  std::lock_guard<std::mutex> l(mu_);
  if (static_cast<int>(streams_.size()) >= max_streams) return std::nullopt;
  const uint64_t id = next_id_++;
  streams_.emplace(id, std::move(stream));
  return id;
}

void StreamRegistry::Remove(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  streams_.erase(id);
  if (streams_.empty()) empty_.notify_all();
}

int StreamRegistry::active() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(streams_.size());
}

void StreamRegistry::CheckProgress(std::chrono::steady_clock::time_point now) {
  std::vector<std::shared_ptr<StreamHandle>> live;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [id, weak] : streams_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->CheckProgress(now);
}

bool StreamRegistry::WaitUntilEmpty(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> l(mu_);
  return empty_.wait_until(l, deadline, [this] { return streams_.empty(); });
}

}  // namespace rtnq::server
