#include "core/clip_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/status_macros.h"

namespace rtnq::internal {
namespace {

// One pass's per-ratio totals (indexed like the ratios, only the candidates filled) and the
// rough kernel's bound terms.
struct PassSums {
  RatioLosses loss{};
  RoughLossTerms terms;
};

// Sums `row_fn(x, quantiles, nq, loss, terms)` over the matrix for the ratios `candidates`: per
// row block in parallel, the blocks combined in order (the same sums for any thread count).
// Counts the pass in `trace`.
template <class RowFn>
absl::StatusOr<PassSums> SumLosses(RowFn row_fn, const std::vector<int>& candidates,
                                   const RowPass& pass, const uint8_t* data, int64_t rows,
                                   const Engine& engine, const std::atomic<bool>* cancel,
                                   FirstBad& bad, ClipSearchTrace& trace) {
  ++trace.passes;
  const std::array<float, kClipRatios> ratios = ClipRatios();
  std::vector<float> quantiles;
  for (int k : candidates) quantiles.push_back(ratios[k]);
  const int nq = static_cast<int>(quantiles.size());
  const int64_t cols = pass.cols;
  const int64_t row_bytes = cols * ElemSize(pass.in_dtype);
  const int64_t per_block = RowsPerBlock(cols);
  const int64_t blocks = (rows + per_block - 1) / per_block;
  std::vector<double> partial(blocks * nq, 0.0);
  std::vector<RoughLossTerms> partial_terms(blocks);
  RTNQ_RETURN_IF_ERROR(engine.ParallelFor(
      blocks,
      [&](int64_t b) {
        RowScratch& scratch = ThreadScratch(cols);
        const int64_t end = std::min(rows, (b + 1) * per_block);
        for (int64_t r = b * per_block; r < end; ++r) {
          const float* x = pass.AsFloat(data + r * row_bytes, scratch);
          if (int64_t c = RowPass::FirstNonFinite(x, cols); c >= 0) {
            bad.Record(r * cols + c);
            continue;
          }
          row_fn(x, quantiles.data(), nq, partial.data() + b * nq, &partial_terms[b]);
        }
      },
      cancel));
  PassSums sums;
  for (int64_t b = 0; b < blocks; ++b) {
    for (int i = 0; i < nq; ++i) sums.loss[candidates[i]] += partial[b * nq + i];
    sums.terms.sum_sq += partial_terms[b].sum_sq;
    sums.terms.scale_abs += partial_terms[b].scale_abs;
  }
  return sums;
}

}  // namespace

std::array<float, kClipRatios> ClipRatios() {
  std::array<float, kClipRatios> r;
  for (int i = 0; i < kClipRatios; ++i) r[i] = static_cast<float>(1.0 - i / 200.0);
  return r;
}

int BestRatio(const std::vector<int>& candidates, const RatioLosses& total, double elements) {
  int best = candidates.front();
  for (int k : candidates) {
    if (total[k] / elements < total[best] / elements) best = k;
  }
  return best;
}

std::vector<int> Contenders(const std::vector<int>& candidates, const RatioLosses& approx,
                            const RatioLosses& bound) {
  double lowest_high = std::numeric_limits<double>::infinity();
  for (int k : candidates) {
    if (!std::isfinite(approx[k]) || !std::isfinite(bound[k])) return candidates;
    lowest_high = std::min(lowest_high, approx[k] + bound[k]);
  }
  std::vector<int> kept;
  for (int k : candidates) {
    if (approx[k] - bound[k] <= lowest_high * (1 + 0x1p-40)) kept.push_back(k);
  }
  return kept;
}

absl::StatusOr<float> SearchClipRatio(const RowPass& pass, const uint8_t* data, int64_t rows,
                                      const Engine& engine, const std::atomic<bool>* cancel,
                                      FirstBad& bad, ClipSearchTrace* trace) {
  ClipSearchTrace local;
  if (trace == nullptr) trace = &local;
  *trace = ClipSearchTrace{};
  const double elements = static_cast<double>(rows) * static_cast<double>(pass.cols);
  const KernelTable& kernels = *pass.kernels;
  const int64_t cols = pass.cols, group_size = pass.group_size;
  const KernelParams& params = pass.params;
  std::vector<int> candidates(kClipRatios);
  std::iota(candidates.begin(), candidates.end(), 0);
  RatioLosses bound{};
  if (kernels.row_loss_rough != nullptr) {
    RTNQ_ASSIGN_OR_RETURN(
        PassSums rough,
        SumLosses(
            [&](const float* x, const float* q, int nq, double* loss, RoughLossTerms* terms) {
              kernels.row_loss_rough(x, cols, group_size, params, q, nq, loss, terms);
            },
            candidates, pass, data, rows, engine, cancel, bad, *trace));
    if (bad.found()) return 1.0f;
    for (int k : candidates) bound[k] = RoughLossBound(rough.loss[k], rough.terms, elements);
    candidates = Contenders(candidates, rough.loss, bound);
    trace->rough_contenders = static_cast<int>(candidates.size());
  }
  if (candidates.size() > 1 && kernels.row_loss_fast != kernels.row_loss) {
    RTNQ_ASSIGN_OR_RETURN(
        PassSums fast,
        SumLosses(
            [&](const float* x, const float* q, int nq, double* loss, RoughLossTerms*) {
              kernels.row_loss_fast(x, cols, group_size, params, q, nq, loss);
            },
            candidates, pass, data, rows, engine, cancel, bad, *trace));
    if (bad.found()) return 1.0f;
    // exact = fast + err with |err| <= rel * exact + slack, so exact lies within
    // fast +/- (rel * fast * (1 + 2 rel) + slack); 1.01 covers the (1 + 2 rel) generously.
    for (int k : candidates) {
      bound[k] = 1.01 * kFastLossRelError * fast.loss[k] + elements * kFastLossAbsError;
    }
    candidates = Contenders(candidates, fast.loss, bound);
  }
  if (candidates.size() == 1) return ClipRatios()[candidates.front()];
  RTNQ_ASSIGN_OR_RETURN(
      PassSums exact,
      SumLosses(
          [&](const float* x, const float* q, int nq, double* loss, RoughLossTerms*) {
            kernels.row_loss(x, cols, group_size, params, q, nq, loss);
          },
          candidates, pass, data, rows, engine, cancel, bad, *trace));
  return ClipRatios()[BestRatio(candidates, exact.loss, elements)];
}

}  // namespace rtnq::internal
