// Local mode: sessions that run the core in-process (rtnq quantize without --server).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/backend.h"
#include "core/engine.h"
#include "core/expert_layout.h"
#include "core/layout/output_plan.h"
#include "core/quantize.h"

namespace rtnq::client {

/// One tensor's outputs in a layout and the quality metrics of quantizing it.
struct LayoutOutputs {
  std::vector<PackedTensor> tensors;
  TensorMetrics metrics;
};

/// Quantizes `input` with `config` and lays the result out: fake keeps name, dtype and shape;
/// inc gives <layer>.qweight/.scales(/.qzeros); gptq gives <layer>.qweight/.qzeros/.scales/.g_idx
/// in options.gptq_format. A tensor the core passes through (1-D, dtype fp32) is
/// InvalidArgument: callers only send tensors they mean to quantize. Errors name the tensor.
/// The server runs the same core calls, which is why both modes give identical bytes.
absl::StatusOr<LayoutOutputs> QuantizeToLayout(const TensorInput& input, const QuantConfig& config,
                                               const OutputLayoutOptions& options,
                                               const Engine& engine);

/// QuantizeToLayout for any tensor a session receives: a 3-D stacked MoE expert tensor
/// (core/expert_layout.h) is quantized expert by expert in the `experts` layout, exactly as if
/// each expert's weight were a tensor of its own (core/expert_quantize.h); without `experts` it
/// is InvalidArgument naming the tensor.
absl::StatusOr<LayoutOutputs> QuantizeTensorToLayout(const TensorInput& input,
                                                     const QuantConfig& config,
                                                     const OutputLayoutOptions& options,
                                                     std::optional<ExpertLayout> experts,
                                                     const Engine& engine);

/// Backend whose sessions quantize in this process over one shared Engine (its arena bounds the
/// threads of all sessions together). Thread-safe.
class LocalBackend : public Backend {
 public:
  /// InvalidArgument for bad engine options (threads, kernels).
  static absl::StatusOr<std::unique_ptr<LocalBackend>> Create(const EngineOptions& options);

  /// Parses spec.config_json (errors name the field); sessions share the engine.
  absl::StatusOr<std::unique_ptr<Session>> OpenSession(const SessionSpec& spec) override;
  /// "local (avx2, 8 threads)".
  std::string Describe() const override;
  const Engine& engine() const { return *engine_; }

 private:
  explicit LocalBackend(std::unique_ptr<Engine> engine);
  std::unique_ptr<Engine> engine_;
};

}  // namespace rtnq::client
