// The GPTQ layout that HF transformers, optimum, GPTQModel and vLLM load (spec "Packing
// (return_int)"): per-column bit streams of codes, float16 scales, packed zero points, g_idx; and
// its exact inverse.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/layout/packed_tensor.h"
#include "core/quantize.h"

namespace rtnq {

/// How zero points are stored: kV1 ("gptq", what every loader reads) stores zero_point - 1;
/// kV2 ("gptq_v2", GPTQModel) stores the true zero point.
enum class GptqFormat : uint8_t { kV1, kV2 };

/// "gptq" or "gptq_v2", the spelling of `checkpoint_format`.
const std::string& GptqFormatName(GptqFormat f);
/// Parses "gptq" / "gptq_v2"; InvalidArgument naming the value otherwise.
absl::StatusOr<GptqFormat> ParseGptqFormat(std::string_view s);

/// The spec's default for a checkpoint whose layers use `configs`: v1 when none is int asym
/// (a sym zero point 2^(b-1) survives the -1), v2 as soon as one is (a zero point of 0 cannot be
/// stored in v1). The format is checkpoint-wide (one `checkpoint_format` key), so callers choose
/// it once for all layers: the client from the configs of the tensors it quantizes, the server
/// (which sees tensors only as they stream) from every config its session can resolve to.
inline GptqFormat DefaultGptqFormat(absl::Span<const QuantConfig> configs) {
  for (const QuantConfig& c : configs) {
    if (IsIntAsym(c)) return GptqFormat::kV2;
  }
  return GptqFormat::kV1;
}

/// Checks that a [out_features, in_features] weight quantized with `config` can be stored in the
/// GPTQ layout: dtype int, bits 2/3/4/8, group_dim 1, no double quant, in_features divisible by
/// the effective group size and by 32/bits, out_features divisible by 32/bits (both by 32 at 3
/// bits, whose packing runs in blocks of 32 codes). InvalidArgument naming the tensor and the
/// rule violated.
absl::Status CheckGptqCompatible(std::string_view name, const QuantConfig& config,
                                 int64_t out_features, int64_t in_features);

/// Options of PackGptq.
struct GptqPackOptions {
  /// Zero-point storage; unset means DefaultGptqFormat({the layer's config}). An explicit choice is
  /// honoured for sym too (its true zero point 2^(b-1) is exact in both), so that a checkpoint
  /// mixing sym and asym layers can use one format. kV1 with an asym group whose zero point is 0
  /// is InvalidArgument (it would wrap and load silently wrong).
  std::optional<GptqFormat> format;
  /// When non-empty: `q` was quantized on W[:, perm] (its group k holds original columns
  /// perm[k*gs .. (k+1)*gs)). qweight is written in original column order and
  /// g_idx[perm[k]] = k / gs (desc_act). Must be a permutation of 0..in_features-1.
  std::vector<int32_t> perm;
  /// Optional bias [out_features] (F32, F16 or BF16), written as F16 <base>.bias.
  const TensorInput* bias = nullptr;
};

/// A GPTQ layer's bias as float16 bits (the layout stores it as F16): `bias` must be [out] of
/// F32, F16 (copied bit for bit) or BF16; a finite value that float16 cannot hold is
/// InvalidArgument naming layer `name`, the bias and the index.
absl::StatusOr<std::vector<uint16_t>> BiasToHalf(const TensorInput& bias, int64_t out,
                                                 std::string_view name);

/// Packs `q` in the GPTQ layout:
///   <base>.qweight I32 [in*bits/32, out]: codes (sym shifted by +2^(b-1) to unsigned) as one
///     little-endian bit stream per output column along the input dimension, element 0 lowest;
///     at 3 bits 32 codes fill 3 words with codes split across word edges, exactly as
///     AutoGPTQ's QuantLinear.pack does.
///   <base>.qzeros I32 [groups, out*bits/32]: zero points (sym: 2^(b-1)), minus 1 in v1, masked
///     to `bits`, as one bit stream per group along the output dimension.
///   <base>.scales F16 [groups, out] (round to nearest even; a finite scale that overflows
///     float16 is InvalidArgument), <base>.g_idx I32 [in], and <base>.bias F16 when given.
/// Errors: CheckGptqCompatible's; a bad permutation or bias; the v1 zero-point-0 rule above
/// (the message names the tensor and counts the groups); Internal for broken invariants of `q`.
absl::StatusOr<std::vector<PackedTensor>> PackGptq(const QuantizedTensor& q,
                                                   std::string_view base_name,
                                                   const GptqPackOptions& options = {});
/// The same, run over blocks of output columns in `engine`'s arena (same bytes for any thread
/// count).
absl::StatusOr<std::vector<PackedTensor>> PackGptq(const QuantizedTensor& q,
                                                   std::string_view base_name,
                                                   const GptqPackOptions& options,
                                                   const Engine& engine);

/// Options of UnpackGptq: what the checkpoint's quantization_config says about the layer.
struct GptqUnpackOptions {
  int bits = 4;
  bool sym = true;
  GptqFormat format = GptqFormat::kV1;
  int64_t group_size = 128;  ///< -1: in_features
  /// The permutation applied when packing (validated against g_idx); empty: derived from g_idx
  /// (columns of each group in increasing order).
  std::vector<int32_t> perm;
};

/// The result of UnpackGptq.
struct GptqUnpacked {
  QuantizedTensor q;          ///< codes/scales/zeros as PackGptq received them
  std::vector<int32_t> perm;  ///< the column permutation; empty when it is the identity
};

/// Inverse of PackGptq: reads <base>.qweight, .qzeros, .scales and .g_idx and rebuilds the
/// QuantizedTensor (config dtype int, group_dim 1; scales widened from F16; sym codes shifted
/// back to signed; asym zeros as loaders read them: v1 stored + 1 without masking, v2 as stored).
/// InvalidArgument for a missing tensor, a wrong dtype or shape (expected vs actual), a g_idx
/// that does not describe equal groups of group_size columns or disagrees with `perm`, and a sym
/// layer whose zero point is not 2^(b-1).
absl::StatusOr<GptqUnpacked> UnpackGptq(absl::Span<const PackedTensor> tensors,
                                        std::string_view base_name,
                                        const GptqUnpackOptions& options);

/// What GPTQ loaders compute from the packed tensors: W[o, c] = (q - zp) * scale, with
/// q and zp the unsigned stored values (zp + 1 in v1, unmasked), group g_idx[c], and the F16
/// scale widened to float32 (the product is exact in float32). Returns [out, in] row-major in
/// original column order. Same shape/dtype errors as UnpackGptq.
absl::StatusOr<std::vector<float>> DequantizeGptq(absl::Span<const PackedTensor> tensors,
                                                  std::string_view base_name, int bits,
                                                  GptqFormat format);

}  // namespace rtnq
