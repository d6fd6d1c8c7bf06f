// FP8 sources: exact decoding of the 8-bit floats that checkpoints ship (DeepSeek-V3/R1, Kimi,
// MiniMax, FBGEMM and compressed-tensors FP8 exports) and their dequantization with the scale
// tensors next to them, so such weights can be re-quantized like any float weight.
//
// Scale layouts in use (all multipliers: w = float(fp8) * scale):
//   X.weight_scale_inv [ceil(out/bh), ceil(in/bw)]  DeepSeek / "fp8" with weight_block_size
//   X.weight_scale     [1] or []                    per tensor (vLLM "fp8", ModelOpt)
//   X.weight_scale     [out, 1] or [out]            per output channel (FBGEMM, CT channel)
//   X.weight_scale     [ceil(out/bh), ceil(in/bw)]  CT block strategy (block_structure)
// Stacked experts [E, out, in] carry the same layouts with a leading [E] (or a single scale).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "core/engine.h"

namespace rtnq {

/// Exact float32 value of an F8_E4M3 code: bias 7, subnormals below 2^-6, no infinities, NaN for
/// S.1111.111 (0x7F, 0xFF), largest finite +-448.
float F8E4M3ToFloat(uint8_t code);
/// Exact float32 value of an F8_E5M2 code: bias 15, subnormals below 2^-14, +-inf for 0x7C/0xFC,
/// NaN for exponent 31 with a non-zero mantissa, largest finite +-57344.
float F8E5M2ToFloat(uint8_t code);
/// Exact float32 value of an F8_E8M0 code: 2^(code - 127), NaN for 0xFF (no sign, no zero).
float F8E8M0ToFloat(uint8_t code);

/// float32 -> F8_E4M3, round to nearest even, saturating at +-448 (NaN -> 0x7F with its sign).
/// For writing synthetic FP8 checkpoints; FloatToF8E4M3(F8E4M3ToFloat(c)) == c for every finite c.
uint8_t FloatToF8E4M3(float f);

/// F8_E4M3 and F8_E5M2: the FP8 weight types rtnq dequantizes before quantizing.
bool IsFp8Weight(ElemType t);

/// The scale tensor names an FP8 weight `X.weight` may have, in the order they are looked for:
/// "X.weight_scale_inv", "X.weight_scale".
std::vector<std::string> Fp8ScaleNames(std::string_view weight_name);

/// How one FP8 weight's scale applies. The weight is viewed as `batch` matrices [rows, cols]
/// (batch = product of the leading dimensions); element (b, i, j) is multiplied by
/// scale[(per_batch ? b : 0), i / block_rows, j / block_cols] of a [scale_rows, scale_cols]
/// matrix per batch.
struct Fp8ScaleLayout {
  std::string scale_name;
  ElemType scale_dtype = ElemType::kF32;
  int64_t batch = 1, rows = 0, cols = 0;
  int64_t block_rows = 1, block_cols = 1;
  int64_t scale_rows = 1, scale_cols = 1;
  bool per_batch = false;
  /// "128x128 blocks", "per tensor" or "per output channel", for reports.
  std::string description;
};

/// Recognises the layout of scale tensor `scale_name` (dtype, shape) of FP8 weight `weight_name`
/// (at least 2-D). `block` is the block size the checkpoint's config states (rows, cols);
/// without it a 2-D scale must match 128x128 blocks. InvalidArgument naming both tensors and the
/// shapes accepted when the shape fits no layout, the scale dtype is not F32/F16/BF16/F8_E8M0, or
/// the weight is not an FP8 type or not at least 2-D.
absl::StatusOr<Fp8ScaleLayout> RecognizeFp8Scale(std::string_view weight_name,
                                                 ElemType weight_dtype,
                                                 const std::vector<int64_t>& weight_shape,
                                                 std::string_view scale_name, ElemType scale_dtype,
                                                 const std::vector<int64_t>& scale_shape,
                                                 std::optional<std::array<int64_t, 2>> block);

/// float32 value of element `i` of a scale tensor of `dtype` (F32, F16, BF16 or F8_E8M0); the
/// caller has checked the dtype (RecognizeFp8Scale does).
float ScaleElementToFloat(const uint8_t* data, ElemType dtype, int64_t i);

/// Dequantizes rows [first_row, first_row + num_rows) of the weight (rows counted over all
/// batches: row r is row r % rows of matrix r / rows) into `out` (num_rows * cols floats):
/// out = float(code) * scale, one float32 multiplication (exact decode, one rounding). `weight`
/// holds those rows' codes only; `scale` the whole scale tensor's bytes. No validation: the
/// caller has checked sizes (DequantizeFp8 does).
void DequantizeFp8Rows(ElemType weight_dtype, const uint8_t* weight, const Fp8ScaleLayout& layout,
                       const uint8_t* scale, int64_t first_row, int64_t num_rows, float* out);

/// Dequantizes a whole FP8 weight to float32 (its shape unchanged), in parallel over blocks of
/// rows in `engine` (same values for any thread count). InvalidArgument naming the tensor when
/// the byte counts do not match the layout.
absl::StatusOr<std::vector<float>> DequantizeFp8(
    std::string_view weight_name, ElemType weight_dtype, absl::Span<const uint8_t> weight,
    const Fp8ScaleLayout& layout, absl::Span<const uint8_t> scale, const Engine& engine);

}  // namespace rtnq
