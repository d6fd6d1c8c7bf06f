// The work of one tensor of a Quantize stream: planned from its header, then run step by step on
// the work pool as its data arrives, producing that tensor's responses. The core's tensor stream
// (core/tensor_stream.h) decides the mode, says what it holds and quantizes the rows in any
// chunking; this class keeps the transport side: the session's config and limits, proto
// messages, the CRC and the memory accounting. No gRPC here: proto messages in, proto out.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/config/weight_config.h"
#include "core/engine.h"
#include "core/expert_layout.h"
#include "core/io/crc32c.h"
#include "core/layout/packed_tensor.h"
#include "core/quantize.h"
#include "core/tensor_stream.h"
#include "rtnq/v1/rtnq.pb.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/session.h"

namespace rtnq::server {

/// What one step of a tensor's work produced.
struct JobStep {
  std::vector<v1::QuantizeResponse> responses;
  int64_t consumed_bytes = 0;  ///< input bytes the job no longer holds (quantized rows, echoes)
  bool finished = false;       ///< responses end with the tensor's TensorMetrics or TensorError
  TensorOutcome outcome = TensorOutcome::kFailed;  ///< when finished
  double seconds = 0;                              ///< when finished: header to result
};

/// The server's limits a plan respects.
struct PlanLimits {
  int64_t output_chunk_bytes = 1 << 20;  ///< data bytes per OutputChunk
  /// A tensor whose reservation (TensorShare) would exceed this is refused with
  /// RESOURCE_EXHAUSTED at its header.
  int64_t max_reservation_bytes = INT64_MAX;
};

/// One tensor's plan and running state. Steps of one job must not run concurrently (a stream
/// runs one step at a time); the accessors are safe from any thread.
class TensorJob {
 public:
  /// How the tensor is processed.
  enum class Mode {
    kFailed,     ///< refused from its header alone (a TensorError); its data is discarded
    kEcho,       ///< passed through: output is the input, chunk by chunk
    kRowStream,  ///< quantized row block by row block as data arrives
    kBuffered,   ///< needs the whole tensor (group_dim 0, MSE search, double quant, stacked
                 ///< MoE experts, ...)
  };

  /// Plans a tensor from its header: resolves its config (weight_config matching), decides its
  /// mode and what it must reserve. Per-tensor problems (unknown dtype, bad shape, element count
  /// overflow, byte count not matching the shape, config not applicable, reservation over
  /// `limits.max_reservation_bytes`) give a kFailed job whose Finish answers the TensorError.
  /// Costs up to the weight_config's size times the name's: run it off gRPC's threads. `cancel`
  /// must outlive the job.
  static std::shared_ptr<TensorJob> Plan(const v1::TensorHeader& header,
                                         std::shared_ptr<const ParsedSession> session,
                                         const Engine& engine, const std::atomic<bool>* cancel,
                                         const PlanLimits& limits);

  Mode mode() const { return mode_; }
  const std::string& name() const { return name_; }
  /// The dtype label for metrics ("invalid" when the dtype string was not understood).
  const std::string& dtype_label() const { return dtype_label_; }
  int64_t total_bytes() const { return total_bytes_; }
  /// One row's bytes for row streaming (a step must complete a row), 1 for echoes, the whole
  /// tensor when buffered.
  int64_t step_bytes() const { return step_bytes_; }
  /// What the tensor reserves at its header and how its data is accounted (memory_budget.h),
  /// from the figures of its TensorStreamPlan: for a kBuffered tensor a floor of its input or its
  /// outputs, whichever is larger; for a row-streamed one a floor of one row (weighted when its
  /// outputs are larger than its input) and, with a packed output, a fixed part for the codes kept
  /// until its end and the packed outputs built from them; nothing for echoes and failed tensors.
  /// Guarded by the stream's lock: steps never touch it.
  TensorShare& share() { return share_; }
  /// The header-time error of a kFailed job.
  const absl::Status& header_error() const { return header_error_; }

  /// Consumes more of the data (kEcho and kRowStream only), in order.
  JobStep AddData(std::vector<std::string> chunks);
  /// Consumes the rest of the data and completes the tensor. Called once, for every mode.
  JobStep Finish(std::vector<std::string> chunks);

 private:
  TensorJob() = default;
  // `job` made a kFailed one answering `status`.
  static std::shared_ptr<TensorJob> Refuse(std::shared_ptr<TensorJob> job,
                                           const absl::Status& status);
  // A job whose reservation is over --max_reservation_bytes becomes a kFailed one saying so.
  static std::shared_ptr<TensorJob> RefuseOverLimit(std::shared_ptr<TensorJob> job,
                                                    const PlanLimits& limits, bool packed = false);
  // Candidate sessions: the tensor is checked under the session's config and every candidate,
  // then measured whole.
  static std::shared_ptr<TensorJob> PlanCandidates(std::shared_ptr<TensorJob> job,
                                                   const QuantizeOptions& options,
                                                   const PlanLimits& limits);
  // InvalidArgument unless the header's total_bytes is the `needed` bytes of its shape and dtype.
  absl::Status CheckTotalBytes(int64_t needed) const;
  JobStep DoAddData(std::vector<std::string>& chunks, bool last);
  JobStep DoFinishBuffered(std::vector<std::string>& chunks);
  // A result header listing `outputs`, then their bytes (freed as they are queued).
  void EmitOutputs(JobStep& step, std::vector<PackedTensor>& outputs);
  JobStep DoFinishStreamed(std::vector<std::string>& chunks);
  // Candidate sessions: every candidate on the whole tensor, one result each
  // (tensor_job_candidates.cc).
  void FinishCandidates(JobStep& step, const TensorInput& input);
  // Runs the chunks through the row stream: block outputs go out as rows complete (unpacked).
  absl::Status StreamRows(std::vector<std::string>& chunks, JobStep& step);

  void Fail(JobStep& step, const absl::Status& status);
  void EmitHeader(JobStep& step, bool quantized, const std::string& skip_reason,
                  const std::vector<v1::OutputTensor>& outputs);
  void EmitBytes(JobStep& step, uint32_t index, int64_t offset, const void* data, size_t size);
  void EmitMetrics(JobStep& step, const TensorMetrics& m, TensorOutcome outcome);
  std::vector<v1::OutputTensor> StreamedOutputs() const;
  void HashData(const std::string& chunk);  // into crc_, when the header carries a CRC
  absl::Status CheckCrc() const;

  // The plan (fixed after Plan).
  Mode mode_ = Mode::kFailed;
  std::string name_;
  std::string dtype_label_ = "invalid";
  ElemType dtype_ = ElemType::kF32;
  std::vector<int64_t> shape_;
  int64_t total_bytes_ = 0;
  std::optional<uint32_t> expected_crc_;
  int64_t step_bytes_ = 1;
  TensorShare share_;
  absl::Status header_error_;
  std::shared_ptr<const ParsedSession> session_;
  const Engine* engine_ = nullptr;
  ResolvedConfig resolved_;
  TensorStreamPlan plan_;  // mode, options, outputs and what they hold (core/tensor_stream.h)
  int64_t output_chunk_bytes_ = 1 << 20;
  std::chrono::steady_clock::time_point start_;

  // Running state (touched by steps only).
  std::unique_ptr<TensorStream> stream_;  // kRowStream: the rows, a split row, kept codes
  int64_t echo_offset_ = 0;
  Crc32c crc_;
  bool header_sent_ = false;
  bool failed_ = false;
};

}  // namespace rtnq::server
