// The AWQ "GEMM" layout (AutoAWQ's WQLinear_GEMM): 4-bit asym int weights as AutoAWQ, vLLM
// (awq, awq_marlin), transformers (AwqConfig) and GPTQModel load them.
//
// Per Linear layer X with weight W [out, in] (format definition: AutoAWQ
// awq/modules/linear/gemm.py WQLinear_GEMM.__init__/from_linear, awq/utils/packing_utils.py):
//   X.qweight I32 [in, out/8]       codes (unsigned 0..15, rtnq's asym codes as they are),
//                                   input-major: word [k, c] holds the codes of input column k
//                                   for outputs 8c..8c+7, nibble i (bits 4i..4i+3) holding
//                                   output 8c + kAwqOrder[i];
//   X.qzeros  I32 [in/gs, out/8]    zero points (unsigned, as they are), same packing;
//   X.scales  F16 [in/gs, out]      rtnq's float32 scales rounded to nearest even.
// Loaders compute W[o, k] = (q - z) * scale with the group of k being k / gs.
// One bits/group_size for the whole checkpoint (the config has no per-layer override).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config/quant_config.h"
#include "core/engine.h"
#include "core/io/safetensors_header.h"
#include "core/layout/packed_tensor.h"
#include "core/quantize.h"

namespace rtnq {

/// Nibble i of an AWQ word holds output column 8c + kAwqOrder[i] (AutoAWQ's AWQ_ORDER).
inline constexpr std::array<int, 8> kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7};

/// Checks that a [out, in] weight quantized with `config` can be stored in the AWQ layout: int,
/// 4 bits, asym (other bits or sym: InvalidArgument suggesting the gptq or compressed-tensors
/// format), group_dim 1, no double quant, group_size -1 or one dividing in_features, and
/// out_features divisible by 8. InvalidArgument naming the tensor and the rule.
absl::Status CheckAwqCompatible(std::string_view name, const QuantConfig& config, int64_t out,
                                int64_t in);

/// The tensors PackAwq produces for layer `layer`, in its order. Same errors as
/// CheckAwqCompatible.
absl::StatusOr<std::vector<TensorSpec>> PlanAwq(std::string_view layer, const QuantConfig& config,
                                                int64_t out, int64_t in);

/// Packs `q` (a 2-D [out, in] weight) as layer `layer`: qweight, qzeros, scales. In `engine`'s
/// arena when given (same bytes for any thread count). Errors: CheckAwqCompatible's; a scale
/// that overflows float16; Internal for broken invariants of `q`.
absl::StatusOr<std::vector<PackedTensor>> PackAwq(const QuantizedTensor& q, std::string_view layer,
                                                  const Engine* engine = nullptr);

/// Inverse of PackAwq for a layer stored with `group_size` (-1: one group): codes, zero points
/// and the F16 scales widened to float32, as a [out, in] QuantizedTensor with config int4 asym.
/// InvalidArgument for a missing tensor or a wrong dtype or shape (expected and actual).
absl::StatusOr<QuantizedTensor> UnpackAwq(absl::Span<const PackedTensor> tensors,
                                          std::string_view layer, int64_t group_size);

}  // namespace rtnq
