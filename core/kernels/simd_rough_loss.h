// row_loss_rough for a vector ISA `V` (see kernels.h for what it computes and its error bound),
// instantiated by avx2.cc and avx512.cc next to simd_impl.h, under the same ODR rule: templates
// on V only.
//
// The MSE search's hot loop. Per element and quantile the exact loss needs a division, a clamp,
// a multiplication, a subtraction and a square; this pass needs four operations, two of them on
// the multiply pipes that bound it:
//   y = x * (1/s);  d = y - round(y);  t += d * d        (and per group: loss += s^2 * t)
// - Multiplying by 1/s (V::Recip, within 1.07 u of it; u = 2^-24) instead of dividing can move y
//   across a rounding tie. The two codes then both lie half a step from x, so their squared
//   errors differ by at most 2 |s x| (2.1 u): that and the float32 steps are what
//   RoughLossBound() (rough_loss_bound.cc) covers.
// - No clamp for most elements: a group's zero point is the same for every quantile (or the
//   group takes the exact-code path), so its codes' bounds are too, and with the smallest scale
//   they give an interval of x that no quantile clamps. Elements outside it ("border" elements,
//   the group's largest magnitudes) are moved to the front of a copy of the group and are the
//   only ones clamped.
// - Groups of up to kRoughLaneGroupMax elements are evaluated kLanes at a time, one group per
//   lane: a block of kLanes groups is copied and transposed so that a vector holds one element
//   of each group, and a quantile's constants are one vector. Longer groups are evaluated in
//   slices with the group's constants in every lane.
// - Groups with extreme or degenerate scales (RoughParams::usable), and float-4 dtypes, take
//   row_loss_fast's path, whose error is within the rough bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/kernels/simd_impl.h"

namespace rtnq::simd {

constexpr int64_t kRoughLaneGroupMax = 128;  // longer groups take the sliced path
constexpr int64_t kRoughSlice = 1024;        // elements of a long group evaluated at once
constexpr int kRoughQuantiles = 40;          // quantiles per pass over a block
// A block holds at most 128 vectors: RoughSums keeps every float32 sum within 40 roundings.
static_assert(kRoughLaneGroupMax <= 128 && kRoughSlice / 8 <= 128);

/// One quantile's constants for the kLanes lanes of a block.
template <class V>
struct RoughQuantile {
  alignas(64) float recip[V::kLanes];     // 1 / scale (V::Recip)
  alignas(64) float scale_sq[V::kLanes];  // scale^2
};

/// The constants of a block for quantiles [0, m), from each lane's extremes.
template <class V>
struct RoughParams {
  RoughQuantile<V> q[kRoughQuantiles];
  // Clamp bounds of round(y): the codes minus the zero point, the same for every quantile.
  alignas(64) float lo[V::kLanes];
  alignas(64) float hi[V::kLanes];
  // No quantile clamps an x strictly between inner_lo and inner_hi.
  alignas(64) float inner_lo[V::kLanes];
  alignas(64) float inner_hi[V::kLanes];
  alignas(64) float max_scale[V::kLanes];  // max over the quantiles of |scale|
  // Bit j: lane j's group is not all zero at the smallest quantile (so no quantile replaces its
  // range), its zero point is the same for every quantile (see ComputeRoughParams), and
  // 2^-60 <= |scale| <= 2^30 (squares and sums stay normal and finite in float32) and
  // max|x| / |scale| < 2^19 (every code and y - code exact in float32, codes at most one apart
  // where y and x / s round apart) for every quantile.
  uint32_t usable = 0;
};

/// Which of quantiles [0, m) are the smallest and the largest: |scale| grows with the quantile
/// (every step of the scale is monotonic), so its range over the quantiles is theirs.
struct QuantileRange {
  int smallest = 0;
  int largest = 0;
};

inline QuantileRange FindQuantileRange(const float* quantiles, int m) {
  QuantileRange r;
  for (int k = 1; k < m; ++k) {
    if (quantiles[k] < quantiles[r.smallest]) r.smallest = k;
    if (quantiles[k] > quantiles[r.largest]) r.largest = k;
  }
  return r;
}

/// Fills `rp` for int modes. The scales are ComputeScaleLanes', the reference's bit for bit.
template <class V>
void ComputeRoughParams(typename V::F mn, typename V::F mx, const KernelParams& p,
                        const float* quantiles, int m, QuantileRange range, RoughParams<V>& rp) {
  using F = typename V::F;
  using M = typename V::M;
  const F zero = V::Set1(0.0f), half = V::Set1(0.5f);
  const bool asym = p.mode == KernelMode::kAsym;
  const F amx = V::Abs(mx), amn = V::Abs(mn);
  // Asym range and sym absolute maximum before the quantile (as ComputeScaleLanes takes them).
  const F lo0 = V::Min(zero, mn), hi0 = V::Max(zero, mx), amax0 = V::Max(amn, amx);
  F smallest_scale = zero, smallest_recip = zero, largest_scale = zero;
  for (int k = 0; k < m; ++k) {
    const F scale = ComputeScaleLanes<V, false>(mn, mx, V::Set1(quantiles[k]), p).scale;
    const F recip = V::Recip(scale);
    V::Store(rp.q[k].recip, recip);
    V::Store(rp.q[k].scale_sq, V::Mul(scale, scale));
    if (k == range.smallest) {
      smallest_scale = scale;
      smallest_recip = recip;
    }
    if (k == range.largest) largest_scale = scale;
  }
  const F q_min = V::Set1(quantiles[range.smallest]);
  M ok = V::And(V::And(V::template Cmp<_CMP_GE_OQ>(V::Abs(smallest_scale), V::Set1(0x1p-60f)),
                       V::template Cmp<_CMP_LE_OQ>(V::Abs(largest_scale), V::Set1(0x1p30f))),
                V::template Cmp<_CMP_LT_OQ>(V::Mul(V::Max(amx, amn), V::Abs(smallest_recip)),
                                            V::Set1(0x1p19f)));
  F zp = zero;
  if (asym) {
    ok = V::And(ok, V::Or(V::template Cmp<_CMP_NEQ_UQ>(V::Mul(lo0, q_min), zero),
                          V::template Cmp<_CMP_NEQ_UQ>(V::Mul(hi0, q_min), zero)));
    // Every quantile's -lo / scale is Z = -lo0 * maxq / (hi0 - lo0) to within 5.01 u |Z|, and z0
    // below to within 3 u |Z|, with |Z| <= maxq <= 255: 8.1 u * 255 < 2^-10. So where z0 is
    // further than that from a half-integer, every quantile's zero point is round(z0).
    const F z0 = V::Mul(V::Neg(lo0), V::Div(V::Set1(p.maxq), V::Sub(hi0, lo0)));
    zp = V::Round(z0);
    ok = V::And(ok, V::template Cmp<_CMP_LT_OQ>(V::Abs(V::Sub(z0, zp)), V::Set1(0.5f - 0x1p-10f)));
  } else {
    ok = V::And(ok, V::template Cmp<_CMP_NEQ_UQ>(V::Mul(amax0, q_min), zero));
  }
  const F lo = V::Sub(V::Set1(p.minq), zp), hi = V::Sub(V::Set1(p.maxq), zp);
  V::Store(rp.lo, lo);
  V::Store(rp.hi, hi);
  // y = x / s_k stays strictly inside (lo - 1/2, hi + 1/2), so round(y) needs no clamp, for x
  // strictly between (lo - 1/2) s_k and (hi + 1/2) s_k (in either order: s < 0 with full range,
  // the same sign for every quantile). The interval with the smallest |s| lies inside all of
  // them; shrinking its ends by 2^-20 covers the rounding of the ends, of 1/s and of y.
  const F a = V::Mul(V::Sub(lo, half), smallest_scale);
  const F b = V::Mul(V::Add(hi, half), smallest_scale);
  const F shrink = V::Set1(1.0f - 0x1p-20f);
  V::Store(rp.inner_lo, V::Mul(V::Min(a, b), shrink));
  V::Store(rp.inner_hi, V::Mul(V::Max(a, b), shrink));
  V::Store(rp.max_scale, V::Abs(largest_scale));
  rp.usable = V::MaskBits(ok);
  if (rp.usable == (1u << V::kLanes) - 1) return;
  // Unusable lanes evaluate to 0 (their elements are zeroed and take the exact-code path).
  V::Store(rp.lo, V::ZeroOutside(lo, ok));
  V::Store(rp.hi, V::ZeroOutside(hi, ok));
  V::Store(rp.max_scale, V::ZeroOutside(V::Abs(largest_scale), ok));
  for (int k = 0; k < m; ++k) {
    V::Store(rp.q[k].recip, V::ZeroOutside(V::Load(rp.q[k].recip), ok));
    V::Store(rp.q[k].scale_sq, V::ZeroOutside(V::Load(rp.q[k].scale_sq), ok));
  }
}

/// Copies `len` elements into `out` (zero-filled to `padded`, a multiple of kLanes) with the
/// border elements (not strictly inside (lo, hi)) first, and returns their count. `out` must
/// have kLanes floats of room past `padded` (zeros are written there). Adds x^2 and |x| of the
/// elements lane-wise to sq and ab.
template <class V>
__attribute__((always_inline)) inline int64_t CopyBorderFirst(const float* g, int64_t len,
                                                              int64_t padded, float lo, float hi,
                                                              float* out, typename V::F& sq,
                                                              typename V::F& ab) {
  using F = typename V::F;
  constexpr int L = V::kLanes;
  constexpr uint32_t kAll = (1u << L) - 1;
  const F zero = V::Set1(0.0f), vlo = V::Set1(lo), vhi = V::Set1(hi);
  auto load = [&](int64_t i) {
    if (i + L <= len) return V::Load(g + i);
    return i < len ? V::LoadPartial(g + i, len - i, zero) : zero;
  };
  uint32_t border[kRoughSlice / L];
  int64_t pos = 0;
  for (int64_t i = 0; i < padded; i += L) {
    const F x = load(i);
    sq = V::Fma(x, x, sq);
    ab = V::Add(ab, V::Abs(x));
    const uint32_t b = V::MaskBits(
        V::Or(V::template Cmp<_CMP_LE_OQ>(x, vlo), V::template Cmp<_CMP_GE_OQ>(x, vhi)));
    border[i / L] = b;
    V::Store(out + pos, V::Compress(x, b));
    pos += __builtin_popcount(b);
  }
  const int64_t count = pos;
  for (int64_t i = 0; i < padded; i += L) {
    const uint32_t in = ~border[i / L] & kAll;
    V::Store(out + pos, V::Compress(load(i), in));
    pos += __builtin_popcount(in);
  }
  return count;
}

/// Per lane, the sum over `nvec` (a multiple of 4) vectors at `buf` of (y - round(y))^2 with
/// y = x * recip, the first `nclamp` vectors (rounded up to a multiple of 4) with round(y)
/// clamped to [lo, hi].
template <class V>
__attribute__((always_inline)) inline typename V::F RoughSquares(const float* buf, int64_t nvec,
                                                                 int64_t nclamp,
                                                                 const RoughParams<V>& rp,
                                                                 const RoughQuantile<V>& q) {
  using F = typename V::F;
  constexpr int L = V::kLanes;
  const F recip = V::Load(q.recip);
  F t[4] = {V::Set1(0.0f), V::Set1(0.0f), V::Set1(0.0f), V::Set1(0.0f)};
  int64_t v = 0;
  if (nclamp > 0) {
    const F lo = V::Load(rp.lo), hi = V::Load(rp.hi);
    for (; v < nclamp; v += 4) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const F y = V::Mul(V::Load(buf + (v + j) * L), recip);
        const F d = V::Sub(y, V::Round(V::Min(hi, V::Max(lo, y))));
        t[j] = V::Fma(d, d, t[j]);
      }
    }
  }
  for (; v < nvec; v += 4) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const F y = V::Mul(V::Load(buf + (v + j) * L), recip);
      const F d = V::Sub(y, V::Round(y));
      t[j] = V::Fma(d, d, t[j]);
    }
  }
  return V::Add(V::Add(t[0], t[1]), V::Add(t[2], t[3]));
}

/// Per quantile, float32 sums of scale^2 * squares over several blocks, widened into the double
/// accumulators before any lane's float32 sum has seen 40 roundings: a block's squares have
/// seen nvec / 4 + 2 (RoughSquares) + 1 (scale^2), and each later block adds one.
template <class V>
class RoughSums {
 public:
  RoughSums(int m, int64_t nvec, typename V::D* acc)
      : m_(m), every_(std::max<int64_t>(1, std::min<int64_t>(16, 37 - nvec / 4))), acc_(acc) {
    for (int k = 0; k < m_; ++k) sums_[k] = V::Set1(0.0f);
  }
  ~RoughSums() { Flush(); }

  /// Adds a block of `nvec` vectors (the first `nclamp` clamped) for every quantile.
  __attribute__((always_inline)) void AddBlock(const float* buf, int64_t nvec, int64_t nclamp,
                                               const RoughParams<V>& rp) {
    for (int k = 0; k < m_; ++k) {
      sums_[k] = V::Fma(RoughSquares<V>(buf, nvec, nclamp, rp, rp.q[k]), V::Load(rp.q[k].scale_sq),
                        sums_[k]);
    }
    if (++blocks_ == every_) Flush();
  }

  void Flush() {
    if (blocks_ == 0) return;
    for (int k = 0; k < m_; ++k) {
      acc_[k] = V::AddWidened(acc_[k], sums_[k]);
      sums_[k] = V::Set1(0.0f);
    }
    blocks_ = 0;
  }

 private:
  const int m_;
  const int64_t every_;
  typename V::D* acc_;
  int64_t blocks_ = 0;
  typename V::F sums_[kRoughQuantiles];
};

/// Groups of at most kRoughLaneGroupMax elements, kLanes groups per block, one per lane.
/// kSlots: the group size rounded up to whole vectors when known at compile time, else 0.
template <class V, KernelMode kMode, int kSlots>
void RoughLaneGroups(const float* x, int64_t n, int64_t group_size, const KernelParams& p,
                     const float* quantiles, int m, LossParams& lp, typename V::D* acc,
                     RoughLossTerms& terms) {
  const QuantileRange range = FindQuantileRange(quantiles, m);
  using F = typename V::F;
  constexpr int L = V::kLanes;
  // Slots per group, a multiple of 4 vectors.
  const int64_t padded = kSlots ? kSlots : (group_size + L - 1) / L * L;
  const int64_t groups = (n + group_size - 1) / group_size;
  // Group j at rows + j * padded (kLanes floats of room after the last one); element e of
  // group j at slots[e * L + j].
  alignas(64) float rows[L * kRoughLaneGroupMax + L];
  alignas(64) float slots[L * kRoughLaneGroupMax];
  RoughParams<V> rp;
  RoughSums<V> sums(m, padded, acc);
  const F zero = V::Set1(0.0f);
  for (int64_t g0 = 0; g0 < groups; g0 += L) {
    const int nb = static_cast<int>(std::min<int64_t>(L, groups - g0));
    // The next block's elements arrive while this one is evaluated (tens of operations per
    // byte: the hardware prefetcher alone leaves the first loads of each block waiting).
    const float* next = x + std::min(n, (g0 + L) * group_size);
    const float* next_end = x + std::min(n, (g0 + 2 * L) * group_size);
    for (const float* a = next; a < next_end; a += 64 / sizeof(float)) __builtin_prefetch(a);
    auto len_of = [&](int j) {
      return j < nb ? std::min(group_size, n - (g0 + j) * group_size) : int64_t{0};
    };
    F mn[L], mx[L];
    for (int j = 0; j < L; ++j) {
      mn[j] = mx[j] = zero;
      if (j < nb) GroupMinMaxLanes<V>(x + (g0 + j) * group_size, len_of(j), mn[j], mx[j]);
    }
    ComputeRoughParams<V>(V::ReduceLanes(mn, [](F a, F b) { return V::Min(a, b); }),
                          V::ReduceLanes(mx, [](F a, F b) { return V::Max(a, b); }), p, quantiles,
                          m, range, rp);
    int64_t nclamp = 0;
    F sq = zero, ab[L];
    for (int j = 0; j < L; ++j) {
      float* row = rows + j * padded;
      const int64_t start = (g0 + j) * group_size;
      const int64_t len = len_of(j);
      ab[j] = zero;
      if (len > 0 && !(rp.usable >> j & 1)) {
        LossAnyGroup<V, kMode, true>(x + start, len, p, quantiles, m, nullptr, lp, acc);
      }
      if (len == 0 || !(rp.usable >> j & 1)) {
        std::fill(row, row + padded, 0.0f);
        continue;
      }
      nclamp = std::max(nclamp, CopyBorderFirst<V>(x + start, len, padded, rp.inner_lo[j],
                                                   rp.inner_hi[j], row, sq, ab[j]));
    }
    terms.sum_sq += V::ReduceAddF(sq);
    terms.scale_abs += V::ReduceAddF(
        V::Mul(V::Load(rp.max_scale), V::ReduceLanes(ab, [](F a, F b) { return V::Add(a, b); })));
    for (int64_t e0 = 0; e0 < padded; e0 += L) {
      F tile[L];
      for (int j = 0; j < L; ++j) tile[j] = V::Load(rows + j * padded + e0);
      V::Transpose(tile);
      for (int e = 0; e < L; ++e) V::Store(slots + (e0 + e) * L, tile[e]);
    }
    sums.AddBlock(slots, padded, nclamp, rp);
  }
}

/// Longer groups: one group at a time in every lane, in slices of kRoughSlice elements.
template <class V, KernelMode kMode>
void RoughLongGroups(const float* x, int64_t n, int64_t group_size, const KernelParams& p,
                     const float* quantiles, int m, LossParams& lp, typename V::D* acc,
                     RoughLossTerms& terms) {
  const QuantileRange range = FindQuantileRange(quantiles, m);
  constexpr int L = V::kLanes;
  alignas(64) float buf[kRoughSlice + L];  // a slice padded to whole blocks of 4 vectors
  RoughParams<V> rp;
  RoughSums<V> sums(m, kRoughSlice / L, acc);
  for (int64_t start = 0; start < n; start += group_size) {
    const int64_t len = std::min(group_size, n - start);
    const float* g = x + start;
    float mn, mx;
    GroupMinMax<V>(g, len, mn, mx);
    ComputeRoughParams<V>(V::Set1(mn), V::Set1(mx), p, quantiles, m, range, rp);
    if (!(rp.usable & 1)) {
      LossAnyGroup<V, kMode, true>(g, len, p, quantiles, m, nullptr, lp, acc);
      continue;
    }
    for (int64_t off = 0; off < len; off += kRoughSlice) {
      const int64_t sl = std::min(kRoughSlice, len - off);
      const int64_t padded = (sl + 4 * L - 1) / (4 * L) * (4 * L);
      typename V::F sq = V::Set1(0.0f), ab = sq;
      const int64_t border =
          CopyBorderFirst<V>(g + off, sl, padded, rp.inner_lo[0], rp.inner_hi[0], buf, sq, ab);
      sums.AddBlock(buf, padded / L, (border + L - 1) / L, rp);
      terms.sum_sq += V::ReduceAddF(sq);
      terms.scale_abs += static_cast<double>(rp.max_scale[0]) * V::ReduceAddF(ab);
    }
  }
}

template <class V, KernelMode kMode>
void RowLossRoughMode(const float* __restrict x, int64_t n, int64_t group_size,
                      const KernelParams& p, const float* __restrict quantiles, int nq,
                      double* __restrict loss, RoughLossTerms* terms) {
  using D = typename V::D;
  D acc[kRoughQuantiles];
  LossParams lp;
  for (int k0 = 0; k0 < nq; k0 += kRoughQuantiles) {
    const int m = std::min(kRoughQuantiles, nq - k0);
    for (int k = 0; k < m; ++k) acc[k] = V::ZeroD();
    RoughLossTerms t;
    constexpr int L = V::kLanes;
    using Fn = void (*)(const float*, int64_t, int64_t, const KernelParams&, const float*, int,
                        LossParams&, D*, RoughLossTerms&);
    Fn fn = RoughLongGroups<V, kMode>;
    if (group_size <= kRoughLaneGroupMax) {
      switch ((group_size + L - 1) / L) {
        case 1:
          fn = RoughLaneGroups<V, kMode, L>;
          break;
        case 2:
          fn = RoughLaneGroups<V, kMode, 2 * L>;
          break;
        case 4:
          fn = RoughLaneGroups<V, kMode, 4 * L>;
          break;
        case 8:
          fn = RoughLaneGroups<V, kMode, 8 * L>;
          break;
        default:
          fn = RoughLaneGroups<V, kMode, 0>;
      }
    }
    fn(x, n, group_size, p, quantiles + k0, m, lp, acc, t);
    for (int k = 0; k < m; ++k) loss[k0 + k] += V::ReduceAdd(acc[k]);
    // Per element once; the scale term of every block (their sum bounds the one over all
    // quantiles, whose per-group largest scale is the largest of the blocks').
    if (k0 == 0) terms->sum_sq += t.sum_sq;
    terms->scale_abs += t.scale_abs;
  }
}

/// RowLossRoughFn for ISA V.
template <class V>
void RowLossRough(const float* __restrict x, int64_t n, int64_t group_size, const KernelParams& p,
                  const float* __restrict quantiles, int nq, double* __restrict loss,
                  RoughLossTerms* terms) {
  switch (p.mode) {
    case KernelMode::kAsym:
      return RowLossRoughMode<V, KernelMode::kAsym>(x, n, group_size, p, quantiles, nq, loss,
                                                    terms);
    case KernelMode::kSym:
    case KernelMode::kSymFullRange:
      return RowLossRoughMode<V, KernelMode::kSym>(x, n, group_size, p, quantiles, nq, loss, terms);
    case KernelMode::kTable:
      return RowLoss<V, true>(x, n, group_size, p, quantiles, nq, loss);
  }
}

}  // namespace rtnq::simd
