#include "server/session_cache.h"

#include <utility>

namespace rtnq::server {
namespace {

// What a compiled weight_config entry costs besides its bytes in the key (merged config, maps,
// a compiled pattern): an estimate that keeps the byte bound meaningful for large configs.
constexpr int64_t kBytesPerWeightConfigEntry = 1024;

}  // namespace

SessionCache::SessionCache(int max_entries, int64_t max_bytes, ServerMetrics* metrics)
    : max_entries_(max_entries), max_bytes_(max_bytes), metrics_(metrics) {}

absl::StatusOr<std::shared_ptr<const ParsedSession>> SessionCache::Get(
    const v1::SessionConfig& config) {
  std::string key;
  if (max_entries_ > 0) {
    key = config.SerializeAsString();
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++hits_;
      if (metrics_ != nullptr) metrics_->SessionCacheHit();
      return it->second->session;
    }
  }
  // Compiled outside the lock: streams with other configs need not wait for this one. Two
  // streams that miss on the same config at once both compile it; the first insert wins.
  absl::StatusOr<std::shared_ptr<const ParsedSession>> session = SessionFromProto(config);
  {
    std::lock_guard<std::mutex> l(mu_);
    ++compilations_;
  }
  if (metrics_ != nullptr) metrics_->SessionConfigCompiled();
  if (session.ok() && max_entries_ > 0) Insert(std::move(key), *session);
  return session;
}

void SessionCache::Insert(std::string key, std::shared_ptr<const ParsedSession> session) {
  const int64_t bytes =
      static_cast<int64_t>(key.size()) +
      kBytesPerWeightConfigEntry * static_cast<int64_t>(session->resolver.entries().size());
  if (bytes > max_bytes_) return;
  std::lock_guard<std::mutex> l(mu_);
  if (index_.contains(key)) return;
  lru_.push_front(Entry{std::move(key), std::move(session), bytes});
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += bytes;
  while (static_cast<int>(lru_.size()) > max_entries_ || bytes_ > max_bytes_) {
    index_.erase(lru_.back().key);
    bytes_ -= lru_.back().bytes;
    lru_.pop_back();
  }
}

int64_t SessionCache::compilations() const {
  std::lock_guard<std::mutex> l(mu_);
  return compilations_;
}

int64_t SessionCache::hits() const {
  std::lock_guard<std::mutex> l(mu_);
  return hits_;
}

int SessionCache::entries() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(lru_.size());
}

int64_t SessionCache::bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return bytes_;
}

}  // namespace rtnq::server
