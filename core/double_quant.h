// Double quantization: the per-group scales are themselves quantized (spec "Double
// quantization of scales").
#pragma once

#include <vector>

#include "core/config/quant_config.h"
#include "core/kernels/kernels.h"

namespace rtnq {

/// Replaces `scales` (the tensor's scale matrix, flattened row-major as one row) by their
/// fake-quantized values: int, double_quant_bits, double_quant_group_size, sym, quantile 1. For
/// double_quant_scheme asym the mean (accumulated in double, rounded to float32) is subtracted
/// first and added back after. `config.double_quant()` must be true.
void DoubleQuantizeScales(const QuantConfig& config, const KernelTable& kernels,
                          std::vector<float>& scales);

}  // namespace rtnq
