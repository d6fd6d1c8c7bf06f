// What every stream of a server shares: options, the engine and work pool, the memory budget,
// metrics, authentication and the stream registry. Owned by RtnqServer.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "core/engine.h"
#include "server/auth.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/server_options.h"
#include "server/session_cache.h"
#include "server/stream_registry.h"
#include "server/work_pool.h"

namespace rtnq::server {

/// Test seams of a server (RtnqServer::Start's second argument); empty in production.
struct ServerHooks {
  /// Runs on the work pool before a tensor's header is planned (its weight_config resolved),
  /// e.g. to make that resolution slow.
  std::function<void(const std::string& tensor_name)> before_plan;
};

/// Shared state of one server; every pointer outlives all streams.
struct ServiceContext {
  const ServerOptions* options = nullptr;
  const Engine* engine = nullptr;
  TaskRunner* pool = nullptr;  ///< steps, config parsing and planning: never on gRPC's threads
  MemoryBudget* memory = nullptr;
  ServerMetrics* metrics = nullptr;
  const TokenAuth* auth = nullptr;  ///< null: no token required
  StreamRegistry* streams = nullptr;
  ServerHooks hooks;
  SessionCache* sessions = nullptr;
  std::atomic<bool> draining{false};  ///< shutting down: new streams are refused
};

}  // namespace rtnq::server
