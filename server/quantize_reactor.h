// One Quantize stream: the reactor that reads requests, hands tensor work to the work pool,
// and writes results back, with backpressure from the memory budget.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "grpcpp/support/server_callback.h"
#include "rtnq/v1/rtnq.pb.h"
#include "server/memory_budget.h"
#include "server/service_context.h"
#include "server/session.h"
#include "server/stream_registry.h"
#include "server/tensor_job.h"

namespace rtnq::server {

/// The reactor of one Quantize call. gRPC holds it from Create to OnDone; shared ownership only
/// bridges the short moments when a finished task or a memory wakeup still refers to it.
///
/// Invariants: at most one read and one write in flight; at most one tensor step running (steps
/// of a stream are sequential, so results keep the tensors' order); Finish is called exactly
/// once, from Advance, and only when no step and no write is in flight (so OnDone, which needs
/// Finish, never races a running step).
class QuantizeReactor final
    : public grpc::ServerBidiReactor<v1::QuantizeRequest, v1::QuantizeResponse>,
      public BudgetWaiter,
      public StreamHandle {
 public:
  /// Creates the reactor of one call. A non-OK `admission` (authentication, shutdown) or a full
  /// registry refuses the call at once with that status.
  static QuantizeReactor* Create(ServiceContext& svc, grpc::CallbackServerContext* ctx,
                                 absl::Status admission);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;
  void OnMemoryAvailable() override;
  void CheckIdle(std::chrono::steady_clock::time_point now) override;

 private:
  /// Where the stream is in the request sequence.
  enum class State {
    kAwaitConfig,  ///< nothing received yet
    kAwaitHeader,  ///< between tensors
    kAwaitMemory,  ///< a tensor's header-time reservation waits for the budget; no reads
    kReceiving,    ///< chunks of an accepted tensor
    kDraining,     ///< chunks of a tensor that already failed: counted and dropped
    kClosing,      ///< the client half-closed: finishing work and writes, then the summary
    kFinishing,    ///< the status is decided: waiting for the step and write in flight
    kDone,         ///< Finish was called
  };

  struct OpenTensor {
    std::shared_ptr<TensorJob> job;
    int64_t received = 0;
    std::vector<std::string> pending;  // chunks not yet handed to a step
    int64_t pending_bytes = 0;
  };
  struct Task {
    std::shared_ptr<TensorJob> job;
    std::vector<std::string> chunks;
    bool last = false;
  };
  struct Outgoing {
    v1::QuantizeResponse message;
    int64_t bytes = 0;  // accounted in the memory budget until written
  };

  QuantizeReactor(ServiceContext& svc, grpc::CallbackServerContext* ctx);

  // The one place that moves the stream forward; every event handler ends here (with mu_ held).
  void Advance(Wakeups& wake);
  void ConsumeRead();
  void OnConfig(const v1::SessionConfig& config);
  void OnHeader(const v1::TensorHeader& header);
  void OnChunk(v1::TensorChunk& chunk);
  void CompleteTensor();
  bool MayRead();
  bool HoldsNothingReleasable() const;
  void StartTask(Task task);
  void OnTaskDone(const std::shared_ptr<TensorJob>& job, JobStep step);
  void Queue(v1::QuantizeResponse message);
  void StartNextWrite();
  void Fail(absl::Status status, const char* reason);
  void FinishNow(const absl::Status& status, Wakeups& wake);
  void Refuse(const absl::Status& status, const char* reason);

  ServiceContext& svc_;
  grpc::CallbackServerContext* const ctx_;
  const std::string peer_;
  const std::chrono::steady_clock::time_point start_;
  std::shared_ptr<QuantizeReactor> self_;  // dropped in OnDone
  std::weak_ptr<BudgetWaiter> waiter_;
  uint64_t registry_id_ = 0;
  bool registered_ = false;

  std::mutex mu_;
  State state_ = State::kAwaitConfig;
  StreamMemory memory_;
  std::atomic<bool> cancel_{false};  // read by running core work (QuantizeOptions.cancel)
  std::shared_ptr<const Session> session_;
  std::unordered_set<std::string> names_;
  OpenTensor open_;
  std::deque<Task> tasks_;
  std::deque<Outgoing> writes_;
  v1::QuantizeRequest request_;
  bool read_in_flight_ = false;
  bool read_done_ = false;  // a completed read waits in request_ for Advance
  bool read_ok_ = false;
  bool write_in_flight_ = false;
  bool writes_failed_ = false;
  bool task_running_ = false;
  bool summary_queued_ = false;
  bool client_cancelled_ = false;
  bool abandon_writes_ = false;  // finish without delivering what is queued
  absl::Status final_status_;
  std::chrono::steady_clock::time_point last_activity_;

  int64_t tensors_ok_ = 0, tensors_skipped_ = 0, tensors_failed_ = 0;
  int64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace rtnq::server
