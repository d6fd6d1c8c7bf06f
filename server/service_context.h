// What every stream of a server shares: options, the engine and work pool, the memory budget,
// metrics, authentication and the stream registry. Owned by RtnqServer.
#pragma once

#include <atomic>

#include "core/engine.h"
#include "server/auth.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/server_options.h"
#include "server/session_cache.h"
#include "server/stream_registry.h"
#include "server/work_pool.h"

namespace rtnq::server {

/// Shared state of one server; every pointer outlives all streams.
struct ServiceContext {
  const ServerOptions* options = nullptr;
  const Engine* engine = nullptr;
  WorkPool* pool = nullptr;
  MemoryBudget* memory = nullptr;
  ServerMetrics* metrics = nullptr;
  const TokenAuth* auth = nullptr;  ///< null: no token required
  StreamRegistry* streams = nullptr;
  SessionCache* sessions = nullptr;
  std::atomic<bool> draining{false};  ///< shutting down: new streams are refused
};

}  // namespace rtnq::server
