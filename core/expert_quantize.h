// Quantizing a stacked MoE expert tensor: every expert's 2-D weight [out, in]
// (core/expert_layout.h) is quantized on its own, exactly as if it had been a separate tensor, in
// parallel over the experts. Packed layouts get one set of tensors per expert
// ("...experts.{i}.gate_proj.qweight"); fake-quant puts each expert's values back, so the fused
// tensor keeps its name, shape and layout.
#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/expert_layout.h"
#include "core/layout/packed_tensor.h"
#include "core/quantize.h"

namespace rtnq {

/// One 2-D weight's result as a layout produces it: output tensors and metrics.
struct PieceOutputs {
  std::vector<PackedTensor> tensors;
  TensorMetrics metrics;
};

/// Quantizes one 2-D weight (named "<slice.layer>.weight", the stacked tensor's dtype, shape
/// [out, in]) into the session's layout. Called concurrently for different experts.
using PieceQuantizer = std::function<absl::StatusOr<PieceOutputs>(const TensorInput& piece)>;

/// Quantizes `stacked` ([E, a, b], laid out as `slices` says, see PlanExpertSlices) one expert
/// weight at a time through `quantize`, in parallel over `engine`. With `fake` each piece's single
/// output (its fake-quantized values) is scattered back into one tensor named, typed and shaped
/// like `stacked`; otherwise the pieces' outputs are returned in slice order. The bytes equal
/// quantizing every slice separately, for any thread count. Metrics cover the whole tensor:
/// elements and groups summed, MSE over all elements, the largest error, the SNR of all
/// elements, and the smallest clip ratio any expert used. Errors: the byte count not matching
/// the shape, or the first failing expert's error (by slice order) prefixed with the tensor and
/// the expert.
absl::StatusOr<PieceOutputs> QuantizeStackedExperts(const TensorInput& stacked,
                                                    const std::vector<ExpertSlice>& slices,
                                                    bool transposed, bool fake,
                                                    const PieceQuantizer& quantize,
                                                    const Engine& engine);

}  // namespace rtnq
