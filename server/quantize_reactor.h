// One Quantize stream: the state machine that reads requests, hands tensor work to the work pool,
// and writes results back, with backpressure from the memory budget. It drives its call through
// StreamTransport (QuantizeCall over gRPC, or a test's own), so it runs without the network too.
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
#include "absl/status/statusor.h"
#include "grpcpp/support/byte_buffer.h"
#include "rtnq/v1/rtnq.pb.h"
#include "server/memory_budget.h"
#include "server/progress_monitor.h"
#include "server/service_context.h"
#include "server/session.h"
#include "server/stream_registry.h"
#include "server/stream_transport.h"
#include "server/tensor_job.h"

namespace rtnq::server {

/// The state machine of one Quantize call, from Start to OnDone.
///
/// Invariants: at most one read and one write in flight; at most one tensor step running (steps
/// of a stream are sequential, so results keep the tensors' order) and at most one preparation
/// (config parsing or a header's planning); Finish is called exactly once, from Advance, and only
/// when no step, no preparation and no write is in flight. Event handlers hold the stream's lock
/// only for O(1) bookkeeping plus O(message size) work; parsing configs, resolving weight_config
/// and quantizing run on the work pool, so neither gRPC's threads nor the progress sweeper nor
/// other streams' wakeups ever wait behind peer-controlled work.
class QuantizeReactor final : public BudgetWaiter,
                              public StreamHandle,
                              public std::enable_shared_from_this<QuantizeReactor> {
 public:
  using Clock = std::chrono::steady_clock;

  /// Starts the stream of a call: a non-OK `admission` (authentication, shutdown) or a full
  /// registry refuses it at once (call.Finish with that status); otherwise the first read starts.
  static std::shared_ptr<QuantizeReactor> Start(ServiceContext& svc, StreamTransport& call,
                                                std::string peer, absl::Status admission);

  // Events of the call.
  void OnReadDone(bool ok);
  void OnWriteDone(bool ok);
  void OnCancel();
  /// The call is over (Finish was called and every operation completed): leaves the registry.
  /// The transport must not be used any more; tasks still holding the stream only drop it.
  void OnDone();

  void OnMemoryAvailable() override;
  /// Never blocks: a stream whose lock is busy is checked at the next sweep.
  void CheckProgress(Clock::time_point now) override;

 private:
  /// Where the stream is in the request sequence.
  enum class State {
    kAwaitConfig,  ///< nothing received yet
    kStarting,     ///< the config is being parsed on the work pool; no reads
    kAwaitHeader,  ///< between tensors
    kPlanning,     ///< a header is being planned on the work pool; no reads
    kAwaitMemory,  ///< a tensor's reservation waits for the budgets; no reads
    kReceiving,    ///< chunks of an accepted tensor
    kDraining,     ///< chunks of a tensor that already failed: counted and dropped
    kClosing,      ///< the client half-closed: finishing work and writes, then the summary
    kFinishing,    ///< the status is decided: waiting for the step, preparation and write in flight
    kDone,         ///< Finish was called
  };

  struct OpenTensor {
    std::shared_ptr<TensorJob> job;
    int64_t received = 0;
    int64_t consumed = 0;              // input bytes the job reported consumed
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
    int64_t bytes = 0;               // data bytes, accounted in the job's share until written
    std::shared_ptr<TensorJob> job;  // null for started and summary
  };

  QuantizeReactor(ServiceContext& svc, StreamTransport& call, std::string peer);

  // The one place that moves the stream forward; every event handler ends here (with mu_ held).
  void Advance(Wakeups& wake);
  void ConsumeRead();
  void OnConfig(v1::SessionConfig& config);
  void OnSessionReady(absl::StatusOr<std::shared_ptr<const ParsedSession>> session);
  void OnHeader(v1::TensorHeader& header);
  void OnPlanned(std::shared_ptr<TensorJob> job);
  void OnChunk(v1::TensorChunk& chunk);
  void CompleteTensor();
  bool MayRead();
  bool StepReady() const;
  Task TakeStep(bool last);
  void StartTask(Task task);
  void OnTaskDone(const std::shared_ptr<TensorJob>& job, JobStep step);
  // Queues a response; returns the change to the stream's account (apply with Account).
  int64_t Queue(v1::QuantizeResponse message, std::shared_ptr<TensorJob> job);
  void Account(int64_t delta, Wakeups& wake) { memory_.Adjust(delta, wake); }
  void StartNextWrite();
  ClientWait CurrentWait() const;
  bool Flushing() const { return !writes_failed_ && !client_cancelled_ && !abandon_writes_; }
  // Ends the stream with `status` once work and writes allow. `finish_complete`: tensors already
  // received whole are still answered (the client's error concerns what came after them).
  void Fail(absl::Status status, const char* reason, bool finish_complete = false);
  void FinishNow(const absl::Status& status, Wakeups& wake);
  void Refuse(const absl::Status& status, const char* reason);

  ServiceContext& svc_;
  StreamTransport& call_;  // used only until Finish
  const std::string peer_;
  const Clock::time_point start_;
  std::weak_ptr<BudgetWaiter> waiter_;
  uint64_t registry_id_ = 0;
  bool registered_ = false;
  int64_t messages_read_ = 0;   // touched by OnReadDone only (reads are sequential)
  grpc::ByteBuffer read_buf_;   // owned by the read in flight
  grpc::ByteBuffer write_buf_;  // owned by the write in flight

  std::mutex mu_;
  State state_ = State::kAwaitConfig;
  StreamMemory memory_;
  ProgressMonitor progress_;
  std::atomic<bool> cancel_{false};  // read by running core work (QuantizeOptions.cancel)
  std::shared_ptr<const ParsedSession> session_;
  std::unordered_set<std::string> names_;
  int64_t name_bytes_ = 0;  // of names_, bounded by --max_stream_name_bytes
  OpenTensor open_;
  std::deque<Task> tasks_;
  std::deque<Outgoing> writes_;
  v1::QuantizeRequest request_;
  absl::Status read_status_;  // why request_ could not be parsed
  bool read_in_flight_ = false;
  bool read_done_ = false;  // a completed read waits in request_ for Advance
  bool read_ok_ = false;
  bool write_in_flight_ = false;
  bool writes_failed_ = false;
  bool task_running_ = false;
  bool prep_running_ = false;  // config parsing or planning on the work pool
  bool summary_queued_ = false;
  bool client_cancelled_ = false;
  bool abandon_writes_ = false;   // finish without delivering what is queued
  bool finish_complete_ = false;  // kFinishing still runs the steps of complete tensors
  absl::Status final_status_;

  int64_t tensors_ok_ = 0, tensors_skipped_ = 0, tensors_failed_ = 0;
  int64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace rtnq::server
