// The compressed-tensors `pack-quantized` layout for int weights: what llm-compressor writes and
// vLLM, SGLang and transformers (through the compressed-tensors library) load natively, sym and
// asym, per group or per output channel.
//
// Per Linear layer X with weight W [out, in] and b-bit codes (format definition: compressed-tensors
// compressors/pack_quantized/{base,helpers}.py, PackedQuantizationCompressor and pack_to_int32):
//   X.weight_packed     I32 [out, ceil(in*b/32)]  codes + 2^(b-1) (compressed-tensors' codes are
//                       signed; rtnq's asym codes are already that unsigned value), element j of
//                       a row at bits [j*b, j*b + b) of the row's little-endian bit stream;
//   X.weight_scale      [out, groups] in the model's float dtype (the input tensor's: F32 scales
//                       are rtnq's exactly, F16/BF16 are them rounded to nearest even);
//   X.weight_shape      I64 [2] = [out, in];
//   X.weight_zero_point I32 [ceil(out*b/32), groups], asym only: zero points packed the same way
//                       along the output dimension (dim 0).
// Loaders compute W[o, c] = (q - zp) * scale; with float32 scales that is rtnq's fake-quantized
// value bit for bit.
//
// Bits 2, 4 and 8 only: for them compressed-tensors' padded packing (releases up to 0.17.x) and its
// dense packing (0.18.0 and later) give the same bytes; for 3, 5, 6 and 7 bits the two are
// incompatible, so a file would load wrongly under one of them.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/io/safetensors_header.h"
#include "core/layout/packed_tensor.h"
#include "core/quantize.h"

namespace rtnq {

/// Checks that a [out, in] weight quantized with `config` can be stored as pack-quantized:
/// dtype int, bits 2/4/8, group_dim 1, no double quant, group_size -1 (per channel) or one that
/// divides in_features (loaders do not shrink a group size larger than in_features).
/// InvalidArgument naming the tensor and the rule.
absl::Status CheckCompressedTensorsCompatible(std::string_view name, const QuantConfig& config,
                                              int64_t out, int64_t in);

/// The tensors PackCompressedTensors produces for layer `layer`, in its order, with scales of
/// `scale_dtype` (F32, F16 or BF16). Same errors as CheckCompressedTensorsCompatible.
absl::StatusOr<std::vector<TensorSpec>> PlanCompressedTensors(std::string_view layer,
                                                              const QuantConfig& config,
                                                              ElemType scale_dtype, int64_t out,
                                                              int64_t in);

/// Packs `q` (a 2-D [out, in] weight) as layer `layer`: weight_packed, weight_scale (in q.dtype),
/// weight_shape and, asym, weight_zero_point. In `engine`'s arena when given (same bytes for any
/// thread count). Errors: CheckCompressedTensorsCompatible's; a scale that overflows q.dtype;
/// Internal for broken invariants of `q`.
absl::StatusOr<std::vector<PackedTensor>> PackCompressedTensors(const QuantizedTensor& q,
                                                                std::string_view layer,
                                                                const Engine* engine = nullptr);

/// Inverse of PackCompressedTensors for a layer recorded with `config` (bits, scheme,
/// group_size): codes, zero points and the stored scales widened to float32 (q.dtype is the
/// scales' dtype). InvalidArgument for a missing tensor or a wrong dtype or shape (expected and
/// actual), or a weight_shape that is not 2 positive sizes.
absl::StatusOr<QuantizedTensor> UnpackCompressedTensors(absl::Span<const PackedTensor> tensors,
                                                        std::string_view layer,
                                                        const QuantConfig& config);

}  // namespace rtnq
