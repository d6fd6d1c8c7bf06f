// Internal to core: the MSE clip search (spec "MSE clip search"). One clip ratio per tensor, the
// first of 40 ratios 1 - i/200 with the strictly smallest mean squared error over the whole
// matrix being quantized.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/row_pass.h"

namespace rtnq::internal {

constexpr int kClipRatios = 40;
using RatioLosses = std::array<double, kClipRatios>;

/// 1 - i/200 for i = 0..39, computed in double and rounded to float32.
std::array<float, kClipRatios> ClipRatios();

/// Index of the first ratio whose mean loss (total / elements) is strictly the smallest.
int BestRatio(const RatioLosses& total, double elements);

/// True when the ranking of `fast` (sums by a table's row_loss_fast over `elements`) might differ
/// from the exact losses' ranking: some loss is not finite, or another ratio lies within the fast
/// sums' error bound (kFastLossRelError, kFastLossAbsError) of the best one.
bool RankingUncertain(const RatioLosses& fast, int best, double elements);

/// The chosen ratio for the `rows` rows of `pass` starting at `data` (rows of
/// pass.cols elements of pass.in_dtype). Ranks the ratios with the kernels' fast losses and
/// computes the exact ones only when RankingUncertain, so the choice is always the exact losses'.
/// A row with NaN/Inf is recorded in `bad` (and the result is then meaningless).
absl::StatusOr<float> SearchClipRatio(const RowPass& pass, const uint8_t* data, int64_t rows,
                                      const Engine& engine, const std::atomic<bool>* cancel,
                                      FirstBad& bad);

}  // namespace rtnq::internal
