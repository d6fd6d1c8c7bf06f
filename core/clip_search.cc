#include "core/clip_search.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/status_macros.h"

namespace rtnq::internal {
namespace {

// Each ratio's squared errors summed over the matrix with `loss_fn`: per row block in parallel,
// the blocks combined in order (the same sums for any thread count).
absl::StatusOr<RatioLosses> SumLosses(RowLossFn loss_fn, const RowPass& pass, const uint8_t* data,
                                      int64_t rows, const Engine& engine,
                                      const std::atomic<bool>* cancel, FirstBad& bad) {
  const std::array<float, kClipRatios> ratios = ClipRatios();
  const int64_t cols = pass.cols;
  const int64_t row_bytes = cols * ElemSize(pass.in_dtype);
  const int64_t per_block = RowsPerBlock(cols);
  const int64_t blocks = (rows + per_block - 1) / per_block;
  std::vector<RatioLosses> partial(blocks);
  RETURN_IF_ERROR(engine.ParallelFor(
      blocks,
      [&](int64_t b) {
        RowScratch& scratch = ThreadScratch(cols);
        partial[b].fill(0.0);
        const int64_t end = std::min(rows, (b + 1) * per_block);
        for (int64_t r = b * per_block; r < end; ++r) {
          const float* x = pass.AsFloat(data + r * row_bytes, scratch);
          if (int64_t c = RowPass::FirstNonFinite(x, cols); c >= 0) {
            bad.Record(r * cols + c);
            continue;
          }
          loss_fn(x, cols, pass.group_size, pass.params, ratios.data(), kClipRatios,
                  partial[b].data());
        }
      },
      cancel));
  RatioLosses total{};
  for (const auto& p : partial) {
    for (int k = 0; k < kClipRatios; ++k) total[k] += p[k];
  }
  return total;
}

}  // namespace

std::array<float, kClipRatios> ClipRatios() {
  std::array<float, kClipRatios> r;
  for (int i = 0; i < kClipRatios; ++i) r[i] = static_cast<float>(1.0 - i / 200.0);
  return r;
}

int BestRatio(const RatioLosses& total, double elements) {
  int best = 0;
  for (int k = 1; k < kClipRatios; ++k) {
    if (total[k] / elements < total[best] / elements) best = k;
  }
  return best;
}

bool RankingUncertain(const RatioLosses& fast, int best, double elements) {
  for (double l : fast) {
    if (!std::isfinite(l)) return true;
  }
  // exact = fast + err with |err| <= rel * exact + slack, so exact lies within
  // fast +/- (rel * fast * (1 + 2 rel) + slack); 1.01 covers the (1 + 2 rel) generously.
  const double slack = elements * kFastLossAbsError;
  auto bound = [&](double l) { return 1.01 * kFastLossRelError * l + slack; };
  for (int k = 0; k < kClipRatios; ++k) {
    if (k != best && fast[k] - bound(fast[k]) <= fast[best] + bound(fast[best])) return true;
  }
  return false;
}

absl::StatusOr<float> SearchClipRatio(const RowPass& pass, const uint8_t* data, int64_t rows,
                                      const Engine& engine, const std::atomic<bool>* cancel,
                                      FirstBad& bad) {
  const double elements = static_cast<double>(rows) * static_cast<double>(pass.cols);
  const KernelTable& kernels = *pass.kernels;
  ASSIGN_OR_RETURN(RatioLosses total,
                   SumLosses(kernels.row_loss_fast, pass, data, rows, engine, cancel, bad));
  int best = BestRatio(total, elements);
  if (!bad.found() && kernels.row_loss_fast != kernels.row_loss &&
      RankingUncertain(total, best, elements)) {
    ASSIGN_OR_RETURN(total, SumLosses(kernels.row_loss, pass, data, rows, engine, cancel, bad));
    best = BestRatio(total, elements);
  }
  return ClipRatios()[best];
}

}  // namespace rtnq::internal
