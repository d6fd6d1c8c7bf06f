// Per-input-column squared errors of a quantized tensor: what an importance-weighted error
// (llama.cpp's imatrix, a per-weight sensitivity) needs beyond the per-tensor metrics. Computed
// from the fake-quantized values the quantizer delivers, so the kernels stay as they are.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/engine.h"
#include "core/quantize.h"

namespace rtnq {

/// The slices a tensor's errors are summed in: one per expert of a stacked [E, out, in] weight
/// (3-D or more: shape[0]), else 1. Planning measures every tensor with these, locally and on
/// servers alike.
inline int64_t ErrorSlices(const std::vector<int64_t>& shape) {
  return shape.size() >= 3 ? shape[0] : 1;
}

/// A tensor seen as `slices` stacks of rows over its last dimension: shape [..., n] has
/// R = elements / n rows of n columns (a Linear weight [out, in]: R = out, n = in; a stacked
/// MoE weight [E, out, in] with slices = E: one slice per expert).
///
/// Returns slices * n sums: out[k * n + j] = sum over the rows r of slice k, in row order, of
/// w[r, j] * (x[r, j] - q[r, j])^2 with x the input, q `fake` (same dtype and shape as the
/// input) and w `element_weights` (same shape, F32/F16/BF16) or 1 when absent. Arithmetic is in
/// double: d = double(x) - double(q), term = d * d, weighted term = double(w) * (d * d), so
/// all-ones weights give exactly the unweighted sums. Results are identical for every thread count
/// (each column is summed by one task, in row order).
///
/// InvalidArgument naming the tensor for: a byte count not matching the shape (input, fake or
/// weights), a non-float dtype, a 0-D tensor, weights of another shape, or `slices` < 1 or not
/// dividing R.
absl::StatusOr<std::vector<double>> ColumnSquaredErrors(
    const TensorInput& input, absl::Span<const uint8_t> fake,
    const std::optional<TensorInput>& element_weights, int64_t slices, const Engine& engine);

}  // namespace rtnq
