// Parsed sessions shared by the streams that send the same session config. A client sends one
// config on every stream it opens (its parallel workers, the streams it rotates); without the
// cache the server parsed it and compiled its weight_config again each time, a cost that grows
// with the config (a 1,000-entry weight_config) and came back every few tensors.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "rtnq/v1/rtnq.pb.h"
#include "server/metrics.h"
#include "server/session.h"

namespace rtnq::server {

/// A least-recently-used cache of sessions (SessionFromProto's result) keyed by the exact
/// serialized bytes of their SessionConfig: two configs share a session only when their bytes
/// are equal, so no hash collision can hand one client another's config. Bounded in entries and
/// in bytes; an entry is charged its key's size plus 1 KiB per weight_config entry (an estimate
/// of the compiled resolver). Configs that fail to parse are not cached (they end their stream).
/// Thread-safe.
class SessionCache {
 public:
  /// At most `max_entries` sessions of at most `max_bytes` charged bytes in all; a session
  /// charged more than `max_bytes` is used but not kept. `max_entries` 0 disables the cache.
  /// `metrics` (may be null) counts compilations and hits.
  SessionCache(int max_entries, int64_t max_bytes, ServerMetrics* metrics);

  /// The session of `config`: the cached one when the same bytes were seen, otherwise parsed and
  /// compiled now (SessionFromProto, with its errors) and cached.
  absl::StatusOr<std::shared_ptr<const ParsedSession>> Get(const v1::SessionConfig& config);

  int64_t compilations() const;  ///< SessionFromProto calls, failed ones included
  int64_t hits() const;          ///< Get calls answered from the cache
  int entries() const;
  int64_t bytes() const;  ///< charged bytes of the cached sessions

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const ParsedSession> session;
    int64_t bytes = 0;
  };
  void Insert(std::string key, std::shared_ptr<const ParsedSession> session);

  const int max_entries_;
  const int64_t max_bytes_;
  ServerMetrics* const metrics_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  absl::flat_hash_map<std::string_view, std::list<Entry>::iterator> index_;  // keys in lru_
  int64_t bytes_ = 0;
  int64_t compilations_ = 0;
  int64_t hits_ = 0;
};

}  // namespace rtnq::server
