// The row kernels behind every quantization, as a table of function pointers chosen once at
// start-up (scalar reference twin, AVX2 or AVX-512). Kernels allocate nothing and validate
// nothing: callers pass finite values and correctly sized buffers.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/kernels/kernel_params.h"

namespace rtnq {

/// Quantizes one row of `n` floats in consecutive groups of `group_size` (the last group may be
/// shorter). Writes per element the code byte (signed codes as two's complement), per group
/// the scale and (asym only, else `zeros` may be null) the zero point, and, if `deq` is not
/// null, the dequantized value.
using QuantRowFn = void (*)(const float* __restrict x, int64_t n, int64_t group_size,
                            const KernelParams& p, float quantile, uint8_t* __restrict codes,
                            float* __restrict scales, int32_t* __restrict zeros,
                            float* __restrict deq);

/// For each of `nq` quantiles, adds to loss[k] the sum over the row of
/// (x - dequantized_k(x))^2, the difference taken in float32 and squared and summed in double.
using RowLossFn = void (*)(const float* __restrict x, int64_t n, int64_t group_size,
                           const KernelParams& p, const float* __restrict quantiles, int nq,
                           double* __restrict loss);

/// row_loss_fast: the same losses with each square formed and summed in float32 (FMA) over at most
/// kFastLossTerms roundings per partial sum before the partial sums are added in double. So
/// |fast - exact| <= kFastLossRelError * exact + n * kFastLossAbsError per quantile (the second
/// term covers float32 underflow; the margin over 41 * 2^-24 also covers both versions' double
/// summation), and the result is not finite if a float32 partial sum overflows.
/// The MSE search ranks ratios with it and falls back to row_loss when two are within the bound.
constexpr int kFastLossTerms = 40;
constexpr double kFastLossRelError = 0x1p-18;  // > 41 * 2^-24
constexpr double kFastLossAbsError = 0x1p-140;

/// What row_loss_rough's error bound needs besides the losses, summed over the rows it was given.
struct RoughLossTerms {
  double sum_sq = 0;     ///< sum of x^2 over the elements it evaluated
  double scale_abs = 0;  ///< sum over its groups of max over the quantiles |scale| * sum |x|
};

/// row_loss_rough: the losses for the MSE search's first ranking, about twice as fast as
/// row_loss_fast: codes from x * (1/s) without checking for near ties, errors as
/// s * (y - code) with y = x * (1/s), squares summed in float32 (at most 40 roundings) before
/// double. Adds to loss[k] and to *terms. RoughLossBound() bounds |rough - exact| for a sum of
/// such losses; float-4 dtypes and groups with extreme scales are evaluated as row_loss_fast.
using RowLossRoughFn = void (*)(const float* __restrict x, int64_t n, int64_t group_size,
                                const KernelParams& p, const float* __restrict quantiles, int nq,
                                double* __restrict loss, RoughLossTerms* terms);

/// An upper bound of |rough - exact| where `rough` is one quantile's sum of row_loss_rough
/// losses over `elements` elements, `terms` the terms summed by the same calls and `exact` the
/// same quantile's row_loss sum. Why it holds is in rough_loss_bound.cc.
double RoughLossBound(double rough, const RoughLossTerms& terms, double elements);

/// Dequantizes a row from codes with given (possibly double-quantized) scales and zero points.
using DequantRowFn = void (*)(const uint8_t* __restrict codes, int64_t n, int64_t group_size,
                              const KernelParams& p, const float* __restrict scales,
                              const int32_t* __restrict zeros, float* __restrict out);

/// Element conversions between storage types and float32.
using ToFloatFn = void (*)(const uint16_t* __restrict in, int64_t n, float* __restrict out);
using FromFloatFn = void (*)(const float* __restrict in, int64_t n, uint16_t* __restrict out);

/// Error statistics of one row: sum of squared errors and of squared originals (double), and the
/// largest absolute error. `approx` is compared against `orig` element by element.
struct RowErrorStats {
  double sse = 0;
  double sum_sq = 0;
  float max_abs = 0;
};

/// One implementation of every kernel.
struct KernelTable {
  std::string_view name;  ///< "reference", "avx2" or "avx512"
  QuantRowFn quant_row;
  RowLossFn row_loss;
  RowLossFn row_loss_fast;        ///< the reference table's is row_loss itself (exact)
  RowLossRoughFn row_loss_rough;  ///< nullptr in the reference table (its losses are exact)
  DequantRowFn dequant_row;
  ToFloatFn bf16_to_float;
  ToFloatFn f16_to_float;
  FromFloatFn float_to_bf16;
  FromFloatFn float_to_f16;
};

/// The scalar twin: the spec in code, and what the SIMD tables are tested against.
const KernelTable& ReferenceKernels();
/// The best table this CPU supports (chosen once); ReferenceKernels() when none applies.
const KernelTable& BestKernels();
/// A table by name ("reference", "avx2", "avx512"); nullptr if unknown or unsupported here.
const KernelTable* KernelsByName(std::string_view name);

/// Row error statistics (used for metrics; plain C++ so every table shares one summation order).
/// Within relative ~1e-6 of the exact sums: squares are summed briefly in float32 (see ref.cc).
RowErrorStats ComputeRowError(const float* __restrict orig, const float* __restrict approx,
                              int64_t n);

}  // namespace rtnq
