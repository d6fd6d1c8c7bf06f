// Internal to core: the MSE clip search (spec "MSE clip search"). One clip ratio per tensor, the
// first of 40 ratios 1 - i/200 with the strictly smallest mean squared error over the whole
// matrix being quantized.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/row_pass.h"

namespace rtnq::internal {

constexpr int kClipRatios = 40;
using RatioLosses = std::array<double, kClipRatios>;

/// 1 - i/200 for i = 0..39, computed in double and rounded to float32.
std::array<float, kClipRatios> ClipRatios();

/// Among the ratio indices `candidates` (ascending), the first whose mean loss
/// (total[k] / elements) is strictly the smallest.
int BestRatio(const std::vector<int>& candidates, const RatioLosses& total, double elements);

/// The candidates whose exact loss may still be the smallest, given losses `approx` with
/// |approx[k] - exact[k]| <= bound[k]: those whose lower end reaches the smallest upper end
/// (every candidate when a value or bound is not finite). A candidate left out has an exact
/// total more than 2^-40 relatively above another's, so its mean is strictly larger too.
std::vector<int> Contenders(const std::vector<int>& candidates, const RatioLosses& approx,
                            const RatioLosses& bound);

/// What a search did, for tests and diagnostics.
struct ClipSearchTrace {
  int passes = 0;            ///< passes over the matrix: 1 (rough decided) to 3 (exact needed)
  int rough_contenders = 0;  ///< ratios the rough pass could not rule out (0 if it did not run)
};

/// The chosen ratio for the `rows` rows of `pass` starting at `data` (rows of pass.cols elements
/// of pass.in_dtype). Up to three passes over the matrix, each for the ratios the previous one
/// could not rule out: the kernels' rough losses for all 40 ratios, their fast losses, and the
/// exact losses. The choice is always the exact losses'. A row with NaN/Inf is recorded in `bad`
/// (and the result is then meaningless).
absl::StatusOr<float> SearchClipRatio(const RowPass& pass, const uint8_t* data, int64_t rows,
                                      const Engine& engine, const std::atomic<bool>* cancel,
                                      FirstBad& bad, ClipSearchTrace* trace = nullptr);

}  // namespace rtnq::internal
