// An rtnq server: the gRPC service, health and reflection on one port, /metrics on another, and
// graceful shutdown. main.cc and the tests drive it through this class.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "server/server_options.h"

namespace grpc {
class Server;
}

namespace rtnq {
class Engine;
}

namespace rtnq::server {

class ServerMetrics;
class MemoryBudget;
class TokenAuth;
class WorkPool;
class StreamRegistry;
class SessionCache;
class QuantizerService;
struct ServiceContext;
struct ServerHooks;

/// A running server. Thread-safe.
class RtnqServer {
 public:
  /// Validates the options, starts listening and reports SERVING. InvalidArgument for bad
  /// options or files, Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<RtnqServer>> Start(const ServerOptions& options);
  /// The same with test seams (service_context.h).
  static absl::StatusOr<std::unique_ptr<RtnqServer>> Start(const ServerOptions& options,
                                                           ServerHooks hooks);
  /// Shuts down with no grace period if Shutdown was not called.
  ~RtnqServer();

  int port() const { return port_; }                  ///< the bound gRPC port
  int metrics_port() const { return metrics_port_; }  ///< 0 without metrics_listen

  /// Graceful shutdown: refuses new streams (UNAVAILABLE), reports NOT_SERVING, lets streams in
  /// flight finish for up to `grace_seconds`, then cancels the rest and stops. Idempotent; later
  /// callers wait for the first to complete.
  void Shutdown(double grace_seconds);
  /// Shutdown with options.shutdown_grace_seconds.
  void Shutdown();
  /// Blocks until a Shutdown has completed.
  void Wait();

  ServerMetrics& metrics() { return *metrics_; }
  const MemoryBudget& memory() const { return *memory_; }
  const SessionCache& session_cache() const { return *sessions_; }
  int active_streams() const;

 private:
  explicit RtnqServer(const ServerOptions& options);
  void SweepStreams();

  const ServerOptions options_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<MemoryBudget> memory_;
  std::unique_ptr<TokenAuth> auth_;
  std::unique_ptr<StreamRegistry> streams_;
  std::unique_ptr<SessionCache> sessions_;
  std::unique_ptr<ServiceContext> context_;
  std::unique_ptr<QuantizerService> service_;
  // Destroyed after the gRPC server and before what its tasks use: its destructor runs the tasks
  // still queued (a cancelled stream's planning or step) and joins, while the context, the
  // service and the engine they reach through their stream still exist.
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<grpc::Server> server_;  // declared last: destroyed first
  int port_ = 0;
  int metrics_port_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  bool shutdown_started_ = false;
  bool shutdown_done_ = false;
  std::thread reaper_;
};

}  // namespace rtnq::server
