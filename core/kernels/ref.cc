// The scalar reference twin: reads like ../shared/spec/RTN.md and defines the expected bits for
// every SIMD kernel.
#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/kernels/group_math.h"
#include "core/kernels/kernels.h"
#include "core/kernels/target_clones.h"

namespace rtnq {
namespace {

void MinMax(const float* x, int64_t n, float& mn, float& mx) {
  mn = x[0];
  mx = x[0];
  for (int64_t i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
}

// The group's scale (and zero point) from its extremes, as the spec orders the float32 steps.
IntGroupScale GroupScale(const float* g, int64_t n, const KernelParams& p, float quantile) {
  float mn, mx;
  MinMax(g, n, mn, mx);
  if (p.mode == KernelMode::kTable) {
    return {ComputeTableScale(std::max(std::fabs(mn), std::fabs(mx)), *p.table, quantile), 0.0f};
  }
  return ComputeIntScale(mn, mx, p, quantile);
}

// Quantizes n values with a known scale; `deq` may be null.
void QuantizeWithScale(const float* g, int64_t n, const KernelParams& p, IntGroupScale s,
                       uint8_t* codes, float* deq) {
  if (p.mode == KernelMode::kTable) {
    const Float4Table& t = *p.table;
    for (int64_t i = 0; i < n; ++i) {
      const int idx = TableIndex(g[i] / s.scale, t);
      codes[i] = static_cast<uint8_t>(t.codes[idx]);
      if (deq) deq[i] = t.values[idx] * s.scale;
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    float q = std::nearbyint(g[i] / s.scale);
    if (p.mode == KernelMode::kAsym) q += s.zp;
    q = std::min(std::max(q, p.minq), p.maxq);
    codes[i] = CodeByte(q);
    if (deq) deq[i] = (p.mode == KernelMode::kAsym ? q - s.zp : q) * s.scale;
  }
}

void QuantRowRef(const float* __restrict x, int64_t n, int64_t group_size, const KernelParams& p,
                 float quantile, uint8_t* __restrict codes, float* __restrict scales,
                 int32_t* __restrict zeros, float* __restrict deq) {
  for (int64_t g = 0, start = 0; start < n; ++g, start += group_size) {
    const int64_t len = std::min(group_size, n - start);
    const IntGroupScale s = GroupScale(x + start, len, p, quantile);
    QuantizeWithScale(x + start, len, p, s, codes + start, deq ? deq + start : nullptr);
    scales[g] = s.scale;
    if (zeros && p.mode == KernelMode::kAsym) zeros[g] = ZeroPointToInt(s.zp);
  }
}

// Order of summation (the SIMD twins may differ in the last bits): per group and quantile, the
// squared errors of each slice of up to kSlice elements are summed in element order, then the
// slice sum is added to loss[k].
void RowLossRef(const float* __restrict x, int64_t n, int64_t group_size, const KernelParams& p,
                const float* __restrict quantiles, int nq, double* __restrict loss) {
  constexpr int64_t kSlice = 1024;
  float deq[kSlice];
  uint8_t codes[kSlice];
  for (int64_t start = 0; start < n; start += group_size) {
    const int64_t len = std::min(group_size, n - start);
    for (int k = 0; k < nq; ++k) {
      const IntGroupScale s = GroupScale(x + start, len, p, quantiles[k]);
      for (int64_t off = 0; off < len; off += kSlice) {
        const int64_t m = std::min(kSlice, len - off);
        const float* g = x + start + off;
        QuantizeWithScale(g, m, p, s, codes, deq);
        double sum = 0;
        for (int64_t i = 0; i < m; ++i) {
          const double d = static_cast<double>(g[i] - deq[i]);
          sum += d * d;
        }
        loss[k] += sum;
      }
    }
  }
}

void DequantRowRef(const uint8_t* __restrict codes, int64_t n, int64_t group_size,
                   const KernelParams& p, const float* __restrict scales,
                   const int32_t* __restrict zeros, float* __restrict out) {
  for (int64_t g = 0, start = 0; start < n; ++g, start += group_size) {
    const int64_t len = std::min(group_size, n - start);
    const float scale = scales[g];
    if (p.mode == KernelMode::kTable) {
      for (int64_t i = 0; i < len; ++i) {
        out[start + i] = p.table->value_by_nibble[codes[start + i] & 15] * scale;
      }
    } else if (p.mode == KernelMode::kAsym) {
      const float zp = static_cast<float>(zeros[g]);
      for (int64_t i = 0; i < len; ++i) {
        out[start + i] = (static_cast<float>(codes[start + i]) - zp) * scale;
      }
    } else {
      for (int64_t i = 0; i < len; ++i) {
        out[start + i] = static_cast<float>(static_cast<int8_t>(codes[start + i])) * scale;
      }
    }
  }
}

void Bf16ToFloatRef(const uint16_t* __restrict in, int64_t n, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(in[i]);
}
void F16ToFloatRef(const uint16_t* __restrict in, int64_t n, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(in[i]);
}
void FloatToBf16Ref(const float* __restrict in, int64_t n, uint16_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToBf16(in[i]);
}
void FloatToF16Ref(const float* __restrict in, int64_t n, uint16_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToHalf(in[i]);
}

}  // namespace

const KernelTable& ReferenceKernels() {
  static const KernelTable table = {"reference",    QuantRowRef,   RowLossRef,     RowLossRef,
                                    nullptr,        DequantRowRef, Bf16ToFloatRef, F16ToFloatRef,
                                    FloatToBf16Ref, FloatToF16Ref};
  return table;
}

// Summed in kErrorLanes interleaved lanes (element i goes to lane i % kErrorLanes), combined
// in lane order: independent chains that the compiler vectorizes without reordering any sum,
// so every clone below (and any thread count) gives the same bits. -ffp-contract=off keeps
// the AVX clones from fusing into FMAs. Within each block of kErrorBlock elements a lane sums
// its 16 squares in float32 and then adds them to its double sum: the metrics are the exact
// sums to within ~16 float32 roundings (relative 1e-6), at a third of the cost of widening
// every element to double (these metrics were a third of QuantizeTensor's time).
// Blocks whose float32 sums leave [kBlockTiny, kBlockHuge) are summed in double instead.
constexpr int64_t kErrorLanes = 16;
constexpr int64_t kErrorBlock = 16 * kErrorLanes;
constexpr float kBlockTiny = 0x1p-100f;
constexpr float kBlockHuge = 0x1p100f;

RTNQ_X86_CLONES RowErrorStats ComputeRowError(const float* __restrict orig,
                                              const float* __restrict approx, int64_t n) {
  double sse[kErrorLanes] = {}, sum_sq[kErrorLanes] = {};
  float max_abs[kErrorLanes] = {};
  for (int64_t b = 0; b < n; b += kErrorBlock) {
    const int64_t end = std::min(n, b + kErrorBlock);
    float block_sse[kErrorLanes] = {}, block_sq[kErrorLanes] = {};
    int64_t i = b;
    for (; i + kErrorLanes <= end; i += kErrorLanes) {
      for (int64_t j = 0; j < kErrorLanes; ++j) {
        const float o = orig[i + j];
        const float d = o - approx[i + j];
        block_sse[j] += d * d;
        block_sq[j] += o * o;
        const float a = std::fabs(d);
        max_abs[j] = max_abs[j] < a ? a : max_abs[j];
      }
    }
    for (int64_t j = 0; i + j < end; ++j) {
      const float o = orig[i + j];
      const float d = o - approx[i + j];
      block_sse[j] += d * d;
      block_sq[j] += o * o;
      max_abs[j] = std::max(max_abs[j], std::fabs(d));
    }
    float total_sq = 0, total_sse = 0;
    for (int64_t j = 0; j < kErrorLanes; ++j) {
      total_sq += block_sq[j];
      total_sse += block_sse[j];
    }
    if (total_sq < kBlockTiny || !(total_sq < kBlockHuge) || !(total_sse < kBlockHuge)) {
      // Squares that overflow float32 (|w| above ~1e19) or underflow it (|w| below ~1e-19):
      // this block in double, element by element, into the same lanes.
      for (int64_t k = b; k < end; ++k) {
        const double o = orig[k];
        const double d = o - static_cast<double>(approx[k]);
        sse[(k - b) % kErrorLanes] += d * d;
        sum_sq[(k - b) % kErrorLanes] += o * o;
      }
      continue;
    }
    for (int64_t j = 0; j < kErrorLanes; ++j) {
      sse[j] += block_sse[j];
      sum_sq[j] += block_sq[j];
    }
  }
  RowErrorStats s;
  for (int64_t j = 0; j < kErrorLanes; ++j) {
    s.sse += sse[j];
    s.sum_sq += sum_sq[j];
    s.max_abs = std::max(s.max_abs, max_abs[j]);
  }
  return s;
}

}  // namespace rtnq
