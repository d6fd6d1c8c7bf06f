// The seam between the rtnq CLI and where quantization runs: in-process (local mode, the core
// directly) or on rtnq servers (gRPC Quantize streams). The CLI plans, reads and writes
// checkpoints; a backend turns one tensor into its output tensors (delivered to a ResultSink as
// they arrive) and metrics. Both backends must give byte-identical outputs for the same session
// and tensor.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/expert_layout.h"
#include "core/io/safetensors_header.h"
#include "core/layout/gptq.h"
#include "core/layout/output_layout.h"
#include "core/quantize.h"

namespace rtnq::client {

/// Everything fixed for a whole run (the first message of a remote stream).
struct SessionSpec {
  /// INC key names at top level plus an optional "weight_config" object
  /// (core/config/config_json.h); the CLI has already merged --config and the per-parameter flags
  /// into it.
  std::string config_json = "{}";
  OutputLayout format = OutputLayout::kFake;  ///< the CLI's --format (OutputLayoutName)
  GptqFormat gptq_format = GptqFormat::kV1;   ///< kGptq only; the CLI resolves the default
  int compression_dim = 1;                    ///< kInc only
  /// Stacked MoE expert tensors (core/expert_layout.h) are quantized expert by expert in this
  /// layout; unset: a session refuses them.
  std::optional<ExpertLayout> expert_layout;
};

/// One tensor to quantize. `tensor.data` is borrowed (usually an mmapped input) and must stay
/// valid for the call.
struct TensorRequest {
  TensorInput tensor;
  /// CRC32C of `tensor.data` when the caller has it already (the resume journal needs it too): the
  /// remote backend sends it in the tensor header and computes it only when it is missing.
  std::optional<uint32_t> crc32c;
};

/// Where a session delivers a tensor's output bytes as they arrive, so that no result is ever
/// held whole in the client: RunQuantize writes them straight into the output file at their
/// offsets, tests collect them (MemorySink). Called only from the thread inside
/// Session::Quantize.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  /// An attempt's outputs (names, dtypes, shapes, in output order), before any of their bytes.
  /// An error fails the tensor without a retry.
  virtual absl::Status Begin(const std::vector<TensorSpec>& outputs) = 0;
  /// Bytes of output `index` at byte `offset`. For each output the offsets come in order,
  /// without gaps, within its size; outputs may interleave. An error fails the tensor.
  virtual absl::Status Write(size_t index, uint64_t offset, absl::Span<const uint8_t> data) = 0;
  /// Forgets everything delivered since Begin: the attempt failed, and the tensor is retried
  /// (Begin again) or given up. A no-op when nothing was begun.
  virtual void Discard() = 0;
};

/// One tensor's answer; its output bytes went to the ResultSink.
struct TensorResult {
  std::string name;
  bool quantized = false;
  std::string skip_reason;          ///< when !quantized
  QuantConfig config;               ///< the resolved config
  std::string decided_by;           ///< deciding weight_config key; empty for the default
  std::string match_kind;           ///< "default", "tensor", "layer" or "pattern"
  std::vector<TensorSpec> outputs;  ///< as given to ResultSink::Begin
  TensorMetrics metrics;            ///< the core's; `seconds` is the time spent quantizing
  /// Remote: header in to result out on the server; local: quantizing and packing.
  double server_seconds = 0;
  std::string served_by;  ///< "local" or the peer address of the replica that answered
  int attempts = 1;       ///< 1 + retries
};

/// One session. Remote: Quantize streams that each carry many tensors, replaced when they break
/// (a transient error: retried, possibly on another replica) and rotated now and then so that
/// round_robin keeps spreading the work (client/remote/client_options.h). Not thread-safe: the
/// CLI gives each worker its own.
class Session {
 public:
  virtual ~Session() = default;
  /// Quantizes one tensor, delivering its outputs to `sink` as they arrive. A per-tensor
  /// problem (bad shape, NaN, a config that cannot apply) is an error status naming the tensor;
  /// the session stays usable. Transient transport errors are retried inside (the sink is told
  /// to Discard the failed attempt first); what comes back is final. On any error the sink has
  /// been told to Discard.
  virtual absl::StatusOr<TensorResult> Quantize(const TensorRequest& tensor, ResultSink& sink) = 0;
  /// Ends the session (remote: half-close and wait for the summary).
  virtual absl::Status Close() = 0;
};

/// A place where sessions run. Thread-safe.
class Backend {
 public:
  virtual ~Backend() = default;
  /// Opens a session; fails with the config's error (naming the field) when the spec is invalid.
  virtual absl::StatusOr<std::unique_ptr<Session>> OpenSession(const SessionSpec& spec) = 0;
  /// "local (avx512, 16 threads)" or "127.0.0.1:50051,127.0.0.1:50052 (round_robin)".
  virtual std::string Describe() const = 0;
};

}  // namespace rtnq::client
