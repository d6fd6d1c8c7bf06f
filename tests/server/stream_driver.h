// Driving Quantize streams without the network: a fake call that records what a stream asks of
// it, a task runner that runs posted work only when told, and the shared state of a server
// without gRPC. The fuzzer (tests/fuzz/server_messages_fuzzer.cc) and seam tests use it; it does
// not link GoogleTest.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/engine.h"
#include "grpcpp/support/byte_buffer.h"
#include "rtnq/v1/rtnq.pb.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/quantize_reactor.h"
#include "server/server_options.h"
#include "server/service_context.h"
#include "server/stream_registry.h"
#include "server/stream_transport.h"
#include "server/work_pool.h"

namespace rtnq::server::testing {

/// Runs posted tasks only when told to, on the caller's thread. Post is thread-safe.
class ManualRunner final : public TaskRunner {
 public:
  void Post(std::function<void()> task) override;
  /// Runs the oldest task; false when there is none.
  bool RunOne();
  /// Runs tasks (including the ones they post) until none is left.
  void RunAll();
  size_t pending() const;

 private:
  mutable std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
};

/// A server's shared state without gRPC, for streams driven by hand.
class DriverContext {
 public:
  /// `runner` null: a ManualRunner owned by the context.
  explicit DriverContext(const ServerOptions& options, TaskRunner* runner = nullptr);
  ServiceContext& svc() { return svc_; }
  ManualRunner& manual() { return manual_; }
  MemoryBudget& memory() { return *memory_; }
  StreamRegistry& streams() { return streams_; }
  const ServerOptions& options() const { return options_; }

 private:
  ServerOptions options_;
  std::unique_ptr<Engine> engine_;
  ServerMetrics metrics_;
  std::unique_ptr<MemoryBudget> memory_;
  StreamRegistry streams_;
  ManualRunner manual_;
  ServiceContext svc_;
};

/// One stream on a fake call. Its operations complete only when the driver says so, as gRPC
/// would: reads with a message or a half-close, writes, cancellation, then OnDone.
class DrivenStream final : public StreamTransport {
 public:
  explicit DrivenStream(DriverContext& ctx, absl::Status admission = absl::OkStatus());
  ~DrivenStream() override;

  // StreamTransport
  void StartRead(grpc::ByteBuffer* request) override;
  void StartWrite(const grpc::ByteBuffer* response) override;
  void Finish(const grpc::Status& status) override;
  void TryCancel() override;
  bool IsCancelled() override;

  bool read_pending() const { return read_ != nullptr; }
  bool write_pending() const { return write_ != nullptr; }
  bool finished() const { return finishes_ > 0; }
  /// The stream cancelled its call (TryCancel); gRPC would now run Cancel's sequence.
  bool cancel_requested() const { return cancelled_ && !cancel_delivered_; }
  int finishes() const { return finishes_; }
  const grpc::Status& status() const { return status_; }
  /// Every response written so far, parsed.
  const std::vector<v1::QuantizeResponse>& responses() const { return responses_; }

  /// Completes the pending read with these bytes (false when no read is pending).
  bool DeliverRaw(const std::string& bytes);
  bool Deliver(const v1::QuantizeRequest& request);
  /// Completes the pending read with ok = false: the client half-closed.
  bool HalfClose();
  /// Completes the pending write (false when none is pending).
  bool CompleteWrite(bool ok);
  /// The client cancels: OnCancel, then the operations in flight fail, as gRPC does.
  void Cancel();
  /// After Finish: completes what is still in flight with ok = false and calls OnDone (once).
  /// False while the stream has not finished.
  bool Done();
  void OnMemoryAvailable() { stream_->OnMemoryAvailable(); }
  void CheckProgress(std::chrono::steady_clock::time_point now) { stream_->CheckProgress(now); }

 private:
  std::shared_ptr<QuantizeReactor> stream_;
  grpc::ByteBuffer* read_ = nullptr;
  const grpc::ByteBuffer* write_ = nullptr;
  bool cancelled_ = false;
  bool cancel_delivered_ = false;
  bool done_ = false;
  int finishes_ = 0;
  grpc::Status status_;
  std::vector<v1::QuantizeResponse> responses_;
};

}  // namespace rtnq::server::testing
