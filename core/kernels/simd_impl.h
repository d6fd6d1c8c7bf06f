// The row kernels written once over a vector-ISA trait `V` and instantiated by avx2.cc and
// avx512.cc, each compiled with its own -m flags. Everything here is a template on V and V's
// types live in an anonymous namespace in those files, so every instantiation has internal
// linkage: no code compiled for one ISA can be picked by the linker for the other table (keep it
// so: a non-template inline function here would be an ODR hazard).
//
// Bit-identity with ref.cc:
// - Per group, scale and zero point are group_math.h's (groups of any size), or its float32
//   steps transcribed to vector lanes (ComputeScaleLanes: several groups, or several quantiles,
//   at once): the same IEEE operations on the same operands in the same order.
// - Per element: true division, rounding half to even, clamping with std::min/std::max's operand
//   semantics, the dequantization in ref.cc's order. No FMA in these numerics.
// - Min/max reductions may visit elements in any order: only the sign of a zero extreme can
//   differ, and no result depends on it (asym: it flips zp between -0 and +0, which cancels in
//   q - zp and stores as code 0; sym and float-4 take |.|). The tests check this.
//
// Requirements on V (F: float vector of kLanes, I: int32 vector, M: lane mask, D: double vector):
//   Load/Store/LoadPartial(p, n, fill)/StorePartial(p, n, v)/Set1/SetI/StoreI;
//   Add/Sub/Mul/Div/Neg/Abs/Round (half to even)/Min/Max (vminps/vmaxps semantics:
//   Min(a, b) = a < b ? a : b, Max(a, b) = a > b ? a : b); Cmp<predicate>/And/Or/Select/
//   NoLanes/Any/NotLess/FirstN/LanesFrom/ZeroOutside on masks; ReduceMin/ReduceMax (one vector)
//   and ReduceLanes(v[kLanes], op) (lane j = op over v[j]); ToInt/ToFloat/AndI;
//   StoreCodes/StoreCodes4/StoreCodesPartial (the low byte of each int32 lane),
//   LoadCodes{U8,I8}[Partial]; Tab/MakeTab/Lookup and TabI/MakeTabI/LookupI (16-entry tables),
//   AddIfGreater, SelectIfNaN; ZeroD/AddD/AddSquares/ReduceAdd; Fma (float) and AddWidened
//   (float lanes added to a double vector, for row_loss_fast); kReciprocalLoss.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

#include "core/kernels/group_math.h"
#include "core/kernels/kernels.h"

namespace rtnq::simd {

// ---------------------------------------------------------------------------------------------
// Group extremes

/// Lane-wise min and max of `len` >= 1 floats (reduce the lanes for the group's). A tail that
/// does not fill a vector is covered by an overlapping load (min/max are idempotent) or, for
/// groups shorter than a vector, by a partial load padded with the group's first element.
template <class V>
inline void GroupMinMaxLanes(const float* g, int64_t len, typename V::F& mn, typename V::F& mx) {
  using F = typename V::F;
  constexpr int L = V::kLanes;
  if (len < L) {
    mn = mx = V::LoadPartial(g, len, V::Set1(g[0]));
    return;
  }
  F mn0 = V::Load(g), mx0 = mn0;
  F mn1 = V::Load(g + len - L), mx1 = mn1;
  int64_t i = L;
  for (; i + 2 * L <= len; i += 2 * L) {
    const F a = V::Load(g + i);
    const F b = V::Load(g + i + L);
    mn0 = V::Min(mn0, a);
    mx0 = V::Max(mx0, a);
    mn1 = V::Min(mn1, b);
    mx1 = V::Max(mx1, b);
  }
  if (i + L <= len) {
    const F a = V::Load(g + i);
    mn0 = V::Min(mn0, a);
    mx0 = V::Max(mx0, a);
  }
  mn = V::Min(mn0, mn1);
  mx = V::Max(mx0, mx1);
}

/// Min and max of `len` >= 1 floats.
template <class V>
inline void GroupMinMax(const float* g, int64_t len, float& mn, float& mx) {
  typename V::F vmn, vmx;
  GroupMinMaxLanes<V>(g, len, vmn, vmx);
  mn = V::ReduceMin(vmn);
  mx = V::ReduceMax(vmx);
}

/// The group's scale and zero point from its extremes, exactly as ref.cc's GroupScale.
template <class V>
inline IntGroupScale ScaleFromMinMax(float mn, float mx, const KernelParams& p, float quantile) {
  if (p.mode == KernelMode::kTable) {
    return {ComputeTableScale(std::max(std::fabs(mn), std::fabs(mx)), *p.table, quantile), 0.0f};
  }
  return ComputeIntScale(mn, mx, p, quantile);
}

// ---------------------------------------------------------------------------------------------
// Float-4 tables

/// A float-4 table in registers, laid out for a 4-step branchless search: the index of x is the
/// number of bucket edges strictly below x, found as idx += s where x > edge[idx + s - 1] for
/// s = 8, 4, 2, 1. Edges past the table's last one are +inf, so they never count.
template <class V>
struct TableRegs {
  typename V::F edge8;  // edge[7], the same for every lane in the first step
  typename V::Tab edge4, edge2, edge1;
  typename V::Tab values;
  typename V::TabI codes;
  typename V::I zero_index;

  explicit TableRegs(const Float4Table& t) {
    float padded[16 + 8];
    for (int i = 0; i < 16 + 8; ++i) {
      padded[i] = i < t.size - 1 ? t.midpoints[i] : std::numeric_limits<float>::infinity();
    }
    edge8 = V::Set1(padded[7]);
    edge4 = V::MakeTab(padded + 3);
    edge2 = V::MakeTab(padded + 1);
    edge1 = V::MakeTab(padded + 0);
    float vals[16] = {};
    int32_t codes32[16] = {};
    for (int i = 0; i < t.size; ++i) {
      vals[i] = t.values[i];
      codes32[i] = t.codes[i];
    }
    values = V::MakeTab(vals);
    codes = V::MakeTabI(codes32);
    zero_index = V::SetI(t.zero_index);
  }

  /// TableIndex() of group_math.h for every lane.
  typename V::I Index(typename V::F y) const {
    typename V::I idx = V::SetI(0);
    idx = V::AddIfGreater(idx, y, edge8, 8);
    idx = V::AddIfGreater(idx, y, V::Lookup(edge4, idx), 4);
    idx = V::AddIfGreater(idx, y, V::Lookup(edge2, idx), 2);
    idx = V::AddIfGreater(idx, y, V::Lookup(edge1, idx), 1);
    return V::SelectIfNaN(y, zero_index, idx);
  }
};

// ---------------------------------------------------------------------------------------------
// quant_row

/// Per-lane scale and zero point: lane j from extremes mn[j], mx[j] and quantile q[j].
template <class V>
struct ScaleLanes {
  typename V::F scale, zp;
};

/// group_math.h's ComputeIntScale / ComputeTableScale transcribed to lanes: the same float32
/// operations on the same operands in the same order (std::min(a, b) = b < a ? b : a is
/// V::Min(b, a), std::max(a, b) = a < b ? b : a is V::Max(b, a)), so every lane equals the
/// scalar result bit for bit (IEEE operations are correctly rounded). The tests compare the
/// scales this gives with the reference's. Without kZeroPoint (row_loss_rough, which derives
/// it once per group and leaves out groups whose range is all zero) the asym zero point is
/// returned as 0 and an all-zero asym range is not replaced.
template <class V, bool kZeroPoint = true>
inline ScaleLanes<V> ComputeScaleLanes(typename V::F mn, typename V::F mx, typename V::F q,
                                       const KernelParams& p) {
  using F = typename V::F;
  const F zero = V::Set1(0.0f), one = V::Set1(1.0f);
  if (p.mode == KernelMode::kTable) {
    // std::max(|mn|, |mx|) * quantile / t.max_value.
    const F absmax = V::Max(V::Abs(mx), V::Abs(mn));
    return {V::Div(V::Mul(absmax, q), V::Set1(p.table->max_value)), zero};
  }
  if (p.mode == KernelMode::kAsym) {
    F lo = V::Mul(V::Min(zero, mn), q);  // std::min(mn, 0.0f) * quantile
    F hi = V::Mul(V::Max(zero, mx), q);  // std::max(mx, 0.0f) * quantile
    if constexpr (!kZeroPoint) return {V::Div(V::Sub(hi, lo), V::Set1(p.maxq)), zero};
    const typename V::M both_zero =
        V::And(V::template Cmp<_CMP_EQ_OQ>(lo, zero), V::template Cmp<_CMP_EQ_OQ>(hi, zero));
    lo = V::Select(both_zero, V::Set1(-1.0f), lo);
    hi = V::Select(both_zero, one, hi);
    const F scale = V::Div(V::Sub(hi, lo), V::Set1(p.maxq));
    return {scale, V::Round(V::Div(V::Neg(lo), scale))};  // nearbyint(-lo / scale)
  }
  const F amx = V::Abs(mx), amn = V::Abs(mn);
  F amax = V::Mul(V::Max(amn, amx), q);  // std::max(amx, amn) * quantile
  amax = V::Select(V::template Cmp<_CMP_EQ_OQ>(amax, zero), one, amax);
  if (p.mode == KernelMode::kSymFullRange) {
    const F scale = V::Div(amax, V::Set1(p.full_range_divisor));
    return {V::Select(V::template Cmp<_CMP_GT_OQ>(amx, amn), V::Neg(scale), scale), zero};
  }
  return {V::Div(amax, V::Set1(p.maxq)), zero};
}

/// Codes (as int32 lanes) of one full vector of an int group; stores the dequantized values.
template <class V, bool kAsym, bool kDeq>
inline typename V::I QuantIntVector(typename V::F x, typename V::F scale, typename V::F zp,
                                    typename V::F minq, typename V::F maxq, float* deq) {
  typename V::F q = V::Round(V::Div(x, scale));
  if constexpr (kAsym) q = V::Add(q, zp);
  // std::min(std::max(q, minq), maxq) with its operand semantics (see V::Min / V::Max).
  q = V::Min(maxq, V::Max(minq, q));
  if constexpr (kDeq) V::Store(deq, V::Mul(kAsym ? V::Sub(q, zp) : q, scale));
  return V::ToInt(q);
}

/// Codes (as int32 lanes) of one full vector of a float-4 group; stores the dequantized values.
template <class V, bool kDeq>
inline typename V::I QuantTableVector(typename V::F x, typename V::F scale, const TableRegs<V>& t,
                                      float* deq) {
  const typename V::I idx = t.Index(V::Div(x, scale));
  if constexpr (kDeq) V::Store(deq, V::Mul(V::Lookup(t.values, idx), scale));
  return V::LookupI(t.codes, idx);
}

/// Codes of one full vector of a group of mode kMode.
template <class V, KernelMode kMode, bool kDeq>
inline typename V::I QuantVector(typename V::F x, typename V::F scale, typename V::F zp,
                                 typename V::F minq, typename V::F maxq, const TableRegs<V>* t,
                                 float* deq) {
  if constexpr (kMode == KernelMode::kTable) {
    return QuantTableVector<V, kDeq>(x, scale, *t, deq);
  } else {
    return QuantIntVector<V, kMode == KernelMode::kAsym, kDeq>(x, scale, zp, minq, maxq, deq);
  }
}

/// One group of any length. The last vector of a group of >= kLanes elements overlaps the
/// previous one (recomputing identical values) instead of being partial; a group shorter than a
/// vector goes through a padded copy.
template <class V, KernelMode kMode, bool kDeq>
void QuantAnyGroup(const float* g, int64_t len, const KernelParams& p, float quantile,
                   const TableRegs<V>* t, uint8_t* codes, float* deq, float& scale_out,
                   float& zp_out) {
  using F = typename V::F;
  constexpr int L = V::kLanes;
  float mn, mx;
  GroupMinMax<V>(g, len, mn, mx);
  const IntGroupScale s = ScaleFromMinMax<V>(mn, mx, p, quantile);
  scale_out = s.scale;
  zp_out = s.zp;
  const F scale = V::Set1(s.scale), zp = V::Set1(s.zp);
  const F minq = V::Set1(p.minq), maxq = V::Set1(p.maxq);
  auto one = [&](const float* src, uint8_t* c, float* d) {
    V::StoreCodes(c, QuantVector<V, kMode, kDeq>(V::Load(src), scale, zp, minq, maxq, t, d));
  };
  if (len < L) {
    alignas(64) float xin[L] = {};
    alignas(64) float dout[L];
    alignas(16) uint8_t cout[L];
    for (int64_t i = 0; i < len; ++i) xin[i] = g[i];
    one(xin, cout, dout);
    for (int64_t i = 0; i < len; ++i) codes[i] = cout[i];
    if constexpr (kDeq) {
      for (int64_t i = 0; i < len; ++i) deq[i] = dout[i];
    }
    return;
  }
  int64_t i = 0;
  for (; i + L <= len; i += L) one(g + i, codes + i, kDeq ? deq + i : nullptr);
  if (i < len) one(g + len - L, codes + len - L, kDeq ? deq + len - L : nullptr);
}

/// Blocks of kLanes consecutive groups of NV full vectors each: the extremes of all groups of a
/// block are reduced together (a transposing reduction leaves group j's in lane j), their scales
/// computed in lanes, then each group is quantized from L1.
template <class V, KernelMode kMode, bool kDeq, int NV>
void QuantRegisterBlocks(const float* x, int64_t blocks, const KernelParams& p, float quantile,
                         const TableRegs<V>* t, uint8_t* codes, float* scales, int32_t* zeros,
                         float* deq) {
  using F = typename V::F;
  constexpr int L = V::kLanes;
  constexpr int64_t kGroup = NV * L;
  constexpr bool kAsym = kMode == KernelMode::kAsym;
  const F minq = V::Set1(p.minq), maxq = V::Set1(p.maxq);
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * L * kGroup;
    F mn[L], mx[L];
#pragma GCC unroll 16
    for (int j = 0; j < L; ++j) {
      mn[j] = mx[j] = V::Load(xb + j * kGroup);
#pragma GCC unroll 8
      for (int v = 1; v < NV; ++v) {
        const F a = V::Load(xb + j * kGroup + v * L);
        mn[j] = V::Min(mn[j], a);
        mx[j] = V::Max(mx[j], a);
      }
    }
    const ScaleLanes<V> s = ComputeScaleLanes<V>(
        V::ReduceLanes(mn, [](F a, F c) { return V::Min(a, c); }),
        V::ReduceLanes(mx, [](F a, F c) { return V::Max(a, c); }), V::Set1(quantile), p);
    float* sc = scales + b * L;
    V::Store(sc, s.scale);
    alignas(64) float zpa[L];
    if constexpr (kAsym) {
      V::Store(zpa, s.zp);
      // static_cast<int32_t>(zp): zp is integer-valued (or NaN/inf, 0x80000000 either way).
      if (zeros) V::StoreI(zeros + b * L, V::ToInt(s.zp));
    }
    for (int j = 0; j < L; ++j) {
      const F scale = V::Set1(sc[j]);
      const F zp = kAsym ? V::Set1(zpa[j]) : scale;
      const int64_t off = b * L * kGroup + j * kGroup;
      // Four vectors' codes are narrowed and stored together where the group has them.
      constexpr int kStep = NV % 4 == 0 ? 4 : 1;
#pragma GCC unroll 8
      for (int v = 0; v < NV; v += kStep) {
        typename V::I c[kStep];
#pragma GCC unroll 4
        for (int u = 0; u < kStep; ++u) {
          const int64_t e = off + (v + u) * L;
          c[u] = QuantVector<V, kMode, kDeq>(V::Load(x + e), scale, zp, minq, maxq, t,
                                             kDeq ? deq + e : nullptr);
        }
        if constexpr (kStep == 4) {
          V::StoreCodes4(codes + off + v * L, c[0], c[1], c[2], c[3]);
        } else {
          V::StoreCodes(codes + off + v * L, c[0]);
        }
      }
    }
  }
}

template <class V, KernelMode kMode, bool kDeq>
void QuantRowMode(const float* __restrict x, int64_t n, int64_t group_size, const KernelParams& p,
                  float quantile, uint8_t* __restrict codes, float* __restrict scales,
                  int32_t* __restrict zeros, float* __restrict deq) {
  constexpr int L = V::kLanes;
  std::optional<TableRegs<V>> table;
  if constexpr (kMode == KernelMode::kTable) table.emplace(*p.table);
  const TableRegs<V>* t = table ? &*table : nullptr;
  const int64_t blocks = n / group_size / L;
  bool blocked = true;
  if (group_size == L) {
    QuantRegisterBlocks<V, kMode, kDeq, 1>(x, blocks, p, quantile, t, codes, scales, zeros, deq);
  } else if (group_size == 2 * L) {
    QuantRegisterBlocks<V, kMode, kDeq, 2>(x, blocks, p, quantile, t, codes, scales, zeros, deq);
  } else if (group_size == 4 * L) {
    QuantRegisterBlocks<V, kMode, kDeq, 4>(x, blocks, p, quantile, t, codes, scales, zeros, deq);
  } else if (group_size == 8 * L) {
    QuantRegisterBlocks<V, kMode, kDeq, 8>(x, blocks, p, quantile, t, codes, scales, zeros, deq);
  } else {
    blocked = false;
  }
  int64_t g = blocked ? blocks * L : 0;  // groups done
  for (int64_t start = g * group_size; start < n; ++g, start += group_size) {
    const int64_t len = std::min(group_size, n - start);
    float zp;
    QuantAnyGroup<V, kMode, kDeq>(x + start, len, p, quantile, t, codes + start,
                                  kDeq ? deq + start : nullptr, scales[g], zp);
    if (kMode == KernelMode::kAsym && zeros) zeros[g] = ZeroPointToInt(zp);
  }
}

template <class V, bool kDeq>
void QuantRowDeq(const float* __restrict x, int64_t n, int64_t group_size, const KernelParams& p,
                 float quantile, uint8_t* __restrict codes, float* __restrict scales,
                 int32_t* __restrict zeros, float* __restrict deq) {
  switch (p.mode) {
    case KernelMode::kAsym:
      return QuantRowMode<V, KernelMode::kAsym, kDeq>(x, n, group_size, p, quantile, codes, scales,
                                                      zeros, deq);
    case KernelMode::kSym:
    case KernelMode::kSymFullRange:
      return QuantRowMode<V, KernelMode::kSym, kDeq>(x, n, group_size, p, quantile, codes, scales,
                                                     zeros, deq);
    case KernelMode::kTable:
      return QuantRowMode<V, KernelMode::kTable, kDeq>(x, n, group_size, p, quantile, codes, scales,
                                                       zeros, deq);
  }
}

/// QuantRowFn for ISA V.
template <class V>
void QuantRow(const float* __restrict x, int64_t n, int64_t group_size, const KernelParams& p,
              float quantile, uint8_t* __restrict codes, float* __restrict scales,
              int32_t* __restrict zeros, float* __restrict deq) {
  if (deq) {
    QuantRowDeq<V, true>(x, n, group_size, p, quantile, codes, scales, zeros, deq);
  } else {
    QuantRowDeq<V, false>(x, n, group_size, p, quantile, codes, scales, zeros, nullptr);
  }
}

// ---------------------------------------------------------------------------------------------
// row_loss
//
// Every quantile of a group is evaluated while the group is in registers (groups of 1, 2 or 4
// full vectors) or in L1 (other sizes, in slices of kSlice elements). For int modes with an
// ordinary scale (see ComputeLossParams) the clamp is shortened, and where V::kReciprocalLoss the
// codes come from x * (1/s) rounded: that can differ from round(x / s) only when x * (1/s) lies
// within a few ulp of a half-integer, and vectors holding such a lane are recomputed with true
// division, so the loss is exactly the one true division gives.

constexpr int kLossBlock = 64;    // quantiles per pass over the row
constexpr int64_t kSlice = 1024;  // elements of a long group evaluated for all quantiles
// row_loss_fast: groups of one register block (parameters for all of them are kept in L1), and
// the bound on float32 roundings per lane before widening to double (kFastLossRelError).
constexpr int kFastBlockGroups = 16;
static_assert(kFastBlockGroups / 2 + 1 <= kFastLossTerms);

/// Per-group constants of every quantile of a block, as arrays over the quantile index.
struct LossParams {
  float scale[kLossBlock];
  float zp[kLossBlock];
  float recip[kLossBlock];  // 1 / scale (kReciprocalLoss only)
  // > 0 where the fast path is enabled, -1 where every vector takes the reference's exact steps.
  // With kReciprocalLoss, a lane y = x * recip is far from a tie if |y - round(y)| < tie_limit.
  float tie_limit[kLossBlock];
  // Clamp bounds of round(x / s) that give (q - zp) directly: [minq - zp, maxq - zp].
  float lo[kLossBlock];
  float hi[kLossBlock];
};

/// The constants of quantiles [0, m) for one group with extremes mn, mx, kLanes quantiles at
/// a time (scale and zero point from ComputeScaleLanes).
///
/// Why the fast path is exact: with r = fl(1/s), fl(x*r) = (x/s)(1+e1)(1+e2) and
/// fl(x/s) = (x/s)(1+e3), |ei| <= 2^-24, so the two differ by less than 3.1 * 2^-24 * |x/s|. If
/// fl(x*r) is further than that from every half-integer, both round to the same integer.
/// ymax = fl(max|x| * |r|) bounds |fl(x*r)| over the group and the margin used is
/// 16 * 2^-24 * ymax. Scales outside [2^-100, 2^100] (r near under/overflow) and ymax or
/// |zp| >= 2^20 disable it; below that every integer involved (q, zp, minq - zp, maxq - zp,
/// clamp(q + zp) - zp) is exact in float32, so clamping q to [minq - zp, maxq - zp] gives the
/// same value as the reference's clamp(q + zp, minq, maxq) - zp (a zero's sign aside, which the
/// square hides).
template <class V>
inline void ComputeLossParams(float mn, float mx, const KernelParams& p, const float* quantiles,
                              int m, LossParams& lp) {
  using F = typename V::F;
  using M = typename V::M;
  constexpr int L = V::kLanes;
  static_assert(kLossBlock % L == 0, "parameter arrays are written a whole vector at a time");
  const float amax = std::max(std::fabs(mn), std::fabs(mx));
  const F one = V::Set1(1.0f);
  for (int k = 0; k < m; k += L) {
    const int cnt = std::min(L, m - k);
    const F q = cnt == L ? V::Load(quantiles + k) : V::LoadPartial(quantiles + k, cnt, one);
    const ScaleLanes<V> sl = ComputeScaleLanes<V>(V::Set1(mn), V::Set1(mx), q, p);
    const F scale = sl.scale, zp = sl.zp;
    if (p.mode == KernelMode::kTable) {
      V::Store(lp.scale + k, scale);
      continue;
    }
    const F abs_scale = V::Abs(scale);
    M ok = V::And(V::And(V::template Cmp<_CMP_GE_OQ>(abs_scale, V::Set1(0x1p-100f)),
                         V::template Cmp<_CMP_LE_OQ>(abs_scale, V::Set1(0x1p100f))),
                  V::template Cmp<_CMP_LT_OQ>(V::Abs(zp), V::Set1(0x1p20f)));
    V::Store(lp.scale + k, scale);
    V::Store(lp.zp + k, zp);
    if constexpr (V::kReciprocalLoss) {
      const F recip = V::Div(one, scale);
      const F ymax = V::Mul(V::Set1(amax), V::Abs(recip));
      ok = V::And(ok, V::template Cmp<_CMP_LT_OQ>(ymax, V::Set1(0x1p20f)));
      V::Store(lp.recip + k, recip);
      V::Store(
          lp.tie_limit + k,
          V::Select(ok, V::Sub(V::Set1(0.5f), V::Mul(ymax, V::Set1(0x1p-20f))), V::Set1(-1.0f)));
    } else {
      // |x / s| <= amax / |s| <= 2^20 without dividing: amax * 2^-20 is exact (or tiny).
      ok = V::And(ok, V::template Cmp<_CMP_LE_OQ>(V::Set1(amax * 0x1p-20f), abs_scale));
      V::Store(lp.tie_limit + k, V::Select(ok, V::Set1(0.25f), V::Set1(-1.0f)));
    }
    const F minq = V::Set1(p.minq), maxq = V::Set1(p.maxq);
    if (p.mode == KernelMode::kAsym) {
      V::Store(lp.lo + k, V::Select(ok, V::Sub(minq, zp), minq));
      V::Store(lp.hi + k, V::Select(ok, V::Sub(maxq, zp), maxq));
    } else {
      V::Store(lp.lo + k, minq);
      V::Store(lp.hi + k, maxq);
    }
  }
}

/// x - dequantized(x) for one vector of an int group, the reference's steps exactly.
template <class V, bool kAsym>
inline typename V::F IntErrorExact(typename V::F x, const LossParams& lp, int k,
                                   const KernelParams& p) {
  using F = typename V::F;
  const F scale = V::Set1(lp.scale[k]), zp = V::Set1(lp.zp[k]);
  F q = V::Round(V::Div(x, scale));
  if constexpr (kAsym) q = V::Add(q, zp);
  q = V::Min(V::Set1(p.maxq), V::Max(V::Set1(p.minq), q));
  return V::Sub(x, V::Mul(kAsym ? V::Sub(q, zp) : q, scale));
}

/// x - dequantized(x) for the NV vectors xs of one group and quantile k, fast path enabled:
/// codes from x * (1/s) where V::kReciprocalLoss (vectors near a tie redone with x / s), else
/// from x / s; then the shortened clamp.
template <class V, int NV>
inline void IntErrorsFast(const typename V::F* xs, const LossParams& lp, int k,
                          typename V::F* err) {
  using F = typename V::F;
  const F scale = V::Set1(lp.scale[k]);
  F q[NV];
  if constexpr (V::kReciprocalLoss) {
    const F recip = V::Set1(lp.recip[k]), tie_limit = V::Set1(lp.tie_limit[k]);
    typename V::M near = V::NoLanes();
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      const F y = V::Mul(xs[j], recip);
      q[j] = V::Round(y);
      near = V::Or(near, V::NotLess(V::Abs(V::Sub(y, q[j])), tie_limit));
    }
    if (V::Any(near)) {
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) q[j] = V::Round(V::Div(xs[j], scale));
    }
  } else {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) q[j] = V::Round(V::Div(xs[j], scale));
  }
  const F lo = V::Set1(lp.lo[k]), hi = V::Set1(lp.hi[k]);
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) err[j] = V::Sub(xs[j], V::Mul(V::Min(hi, V::Max(lo, q[j])), scale));
}

/// x - dequantized(x) for one vector of a float-4 group.
template <class V>
inline typename V::F TableError(typename V::F x, const TableRegs<V>& t, float s) {
  const typename V::F scale = V::Set1(s);
  const typename V::I idx = t.Index(V::Div(x, scale));
  return V::Sub(x, V::Mul(V::Lookup(t.values, idx), scale));
}

/// x - dequantized(x) for the NV vectors xs of one group and quantile k; the last vector is
/// limited to `keep` lanes (the others zero) when kMasked.
template <class V, KernelMode kMode, int NV, bool kMasked>
inline void GroupErrors(const typename V::F* xs, typename V::M keep, const LossParams& lp, int k,
                        const KernelParams& p, const TableRegs<V>* t, typename V::F* err) {
  if constexpr (kMode == KernelMode::kTable) {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) err[j] = TableError<V>(xs[j], *t, lp.scale[k]);
  } else if (lp.tie_limit[k] > 0.0f) {
    IntErrorsFast<V, NV>(xs, lp, k, err);
  } else {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      err[j] = IntErrorExact<V, kMode == KernelMode::kAsym>(xs[j], lp, k, p);
    }
  }
  if constexpr (kMasked) err[NV - 1] = V::ZeroOutside(err[NV - 1], keep);
}

/// acc + e * e: exactly in double (V::D accumulators), or in float32 with one rounding (V::F).
template <class V>
inline typename V::D AddSquare(typename V::D acc, typename V::F e) {
  return V::AddSquares(acc, e);
}
template <class V>
inline typename V::F AddSquare(typename V::F acc, typename V::F e) {
  return V::Fma(e, e, acc);
}

/// Adds the squared errors of NV vectors xs for quantile k to the NA accumulators acc (vector
/// j to acc[j % NA]: independent chains for long groups). The last vector is limited to `keep`
/// lanes when kMasked. Double accumulators (A = V::D) are exact: every square is formed and
/// summed in double. Float accumulators (A = V::F, row_loss_fast) sum the squares in float32
/// (FMA); their caller widens them into double after at most kFastLossTerms roundings per lane.
template <class V, KernelMode kMode, int NV, int NA, bool kMasked, class A>
inline void GroupSquares(const typename V::F* xs, typename V::M keep, const LossParams& lp, int k,
                         const KernelParams& p, const TableRegs<V>* t, A* acc) {
  typename V::F err[NV];
  GroupErrors<V, kMode, NV, kMasked>(xs, keep, lp, k, p, t, err);
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) acc[j % NA] = AddSquare<V>(acc[j % NA], err[j]);
}

/// The squared errors of one slice of a group (`full` elements in whole vectors, then `rem` in
/// `tail`) for quantile k, four vectors at a time into the four accumulators a.
template <class V, KernelMode kMode, class A>
inline void SliceSquares(const float* s, int64_t full, int rem, const typename V::F* tail,
                         const LossParams& lp, int k, const KernelParams& p, const TableRegs<V>* t,
                         A* a) {
  using F = typename V::F;
  constexpr int L = V::kLanes;
  int64_t i = 0;
  for (; i + 4 * L <= full; i += 4 * L) {
    const F xs[4] = {V::Load(s + i), V::Load(s + i + L), V::Load(s + i + 2 * L),
                     V::Load(s + i + 3 * L)};
    GroupSquares<V, kMode, 4, 4, false>(xs, V::NoLanes(), lp, k, p, t, a);
  }
  for (; i < full; i += L) {
    const F xs[1] = {V::Load(s + i)};
    GroupSquares<V, kMode, 1, 1, false>(xs, V::NoLanes(), lp, k, p, t, a);
  }
  if (rem) GroupSquares<V, kMode, 1, 1, true>(tail, V::FirstN(rem), lp, k, p, t, a + 1);
}

/// Loss of a row whose groups (all but possibly a shorter last one) are NV full vectors: each
/// group is loaded once and stays in registers for every quantile.
template <class V, KernelMode kMode, int NV>
void LossRegisterGroups(const float* x, int64_t n, int64_t group_size, const KernelParams& p,
                        const float* quantiles, int m, const TableRegs<V>* t, LossParams& lp,
                        typename V::D* acc) {
  using F = typename V::F;
  for (int64_t start = 0; start + group_size <= n; start += group_size) {
    F xs[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) xs[j] = V::Load(x + start + j * V::kLanes);
    F mn = xs[0], mx = xs[0];
#pragma GCC unroll 8
    for (int j = 1; j < NV; ++j) {
      mn = V::Min(mn, xs[j]);
      mx = V::Max(mx, xs[j]);
    }
    ComputeLossParams<V>(V::ReduceMin(mn), V::ReduceMax(mx), p, quantiles, m, lp);
    for (int k = 0; k < m; ++k) {
      GroupSquares<V, kMode, NV, 1, false>(xs, V::NoLanes(), lp, k, p, t, &acc[k]);
    }
  }
}

/// LossRegisterGroups' fast twin: blocks of up to kFastBlockGroups / NV groups have their
/// parameters computed first; then, per quantile, the block's squares are summed in float32
/// (kFastBlockGroups / 2 per lane and accumulator, plus one addition) and widened into the
/// double accumulator once.
template <class V, KernelMode kMode, int NV>
void LossRegisterGroupsFast(const float* x, int64_t n, int64_t group_size, const KernelParams& p,
                            const float* quantiles, int m, const TableRegs<V>* t, LossParams* lps,
                            typename V::D* acc) {
  using F = typename V::F;
  constexpr int L = V::kLanes;
  constexpr int kBlock = kFastBlockGroups / NV;
  const int64_t groups = n / group_size;
  for (int64_t g0 = 0; g0 < groups; g0 += kBlock) {
    const int nb = static_cast<int>(std::min<int64_t>(kBlock, groups - g0));
    const float* xb = x + g0 * group_size;
    for (int b = 0; b < nb; ++b) {
      const float* g = xb + b * group_size;
      F mn = V::Load(g), mx = mn;
#pragma GCC unroll 8
      for (int j = 1; j < NV; ++j) {
        mn = V::Min(mn, V::Load(g + j * L));
        mx = V::Max(mx, V::Load(g + j * L));
      }
      ComputeLossParams<V>(V::ReduceMin(mn), V::ReduceMax(mx), p, quantiles, m, lps[b]);
    }
    for (int k = 0; k < m; ++k) {
      F fa[2] = {V::Set1(0.0f), V::Set1(0.0f)};
      for (int b = 0; b < nb; ++b) {
        F xs[NV];
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) xs[j] = V::Load(xb + b * group_size + j * L);
        GroupSquares<V, kMode, NV, NV == 1 ? 1 : 2, false>(xs, V::NoLanes(), lps[b], k, p, t,
                                                           NV == 1 ? &fa[b & 1] : fa);
      }
      acc[k] = V::AddWidened(acc[k], V::Add(fa[0], fa[1]));
    }
  }
}

/// Loss of one group of any length: slices of up to kSlice elements (L1-resident) for every
/// quantile, four vectors at a time into four accumulators; a partial last vector is masked.
/// kFast sums each slice's squares in float32 and widens them into double once per slice.
template <class V, KernelMode kMode, bool kFast>
void LossAnyGroup(const float* g, int64_t len, const KernelParams& p, const float* quantiles, int m,
                  const TableRegs<V>* t, LossParams& lp, typename V::D* acc) {
  using F = typename V::F;
  using D = typename V::D;
  constexpr int L = V::kLanes;
  // Per lane of the widened sum: kSlice / (4 * L) + 3 + 1 squares, then 3 additions.
  static_assert(!kFast || kSlice / (4 * L) + 7 <= kFastLossTerms, "slice too long for float sums");
  float mn, mx;
  GroupMinMax<V>(g, len, mn, mx);
  ComputeLossParams<V>(mn, mx, p, quantiles, m, lp);
  for (int64_t off = 0; off < len; off += kSlice) {
    const int64_t sl = std::min(kSlice, len - off);
    const float* s = g + off;
    const int64_t full = sl / L * L;
    const int rem = static_cast<int>(sl - full);
    const F tail[1] = {V::LoadPartial(s + full, rem, V::Set1(0.0f))};
    for (int k = 0; k < m; ++k) {
      if constexpr (kFast) {
        const F zero = V::Set1(0.0f);
        F a[4] = {zero, zero, zero, zero};
        SliceSquares<V, kMode>(s, full, rem, tail, lp, k, p, t, a);
        acc[k] = V::AddWidened(acc[k], V::Add(V::Add(a[0], a[1]), V::Add(a[2], a[3])));
      } else {
        D a[4] = {acc[k], V::ZeroD(), V::ZeroD(), V::ZeroD()};
        SliceSquares<V, kMode>(s, full, rem, tail, lp, k, p, t, a);
        acc[k] = V::AddD(V::AddD(a[0], a[1]), V::AddD(a[2], a[3]));
      }
    }
  }
}

template <class V, KernelMode kMode, bool kFast>
void RowLossMode(const float* __restrict x, int64_t n, int64_t group_size, const KernelParams& p,
                 const float* __restrict quantiles, int nq, double* __restrict loss) {
  using D = typename V::D;
  constexpr int L = V::kLanes;
  D acc[kLossBlock];
  LossParams lps[kFast ? kFastBlockGroups : 1];
  std::optional<TableRegs<V>> table;
  if constexpr (kMode == KernelMode::kTable) table.emplace(*p.table);
  const TableRegs<V>* t = table ? &*table : nullptr;
  for (int k0 = 0; k0 < nq; k0 += kLossBlock) {
    const int m = std::min(kLossBlock, nq - k0);
    const float* qs = quantiles + k0;
    for (int k = 0; k < m; ++k) acc[k] = V::ZeroD();
    bool in_registers = true;
    if constexpr (kFast) {
      if (group_size == L) {
        LossRegisterGroupsFast<V, kMode, 1>(x, n, group_size, p, qs, m, t, lps, acc);
      } else if (group_size == 2 * L) {
        LossRegisterGroupsFast<V, kMode, 2>(x, n, group_size, p, qs, m, t, lps, acc);
      } else if (group_size == 4 * L) {
        LossRegisterGroupsFast<V, kMode, 4>(x, n, group_size, p, qs, m, t, lps, acc);
      } else {
        in_registers = false;
      }
    } else {
      if (group_size == L) {
        LossRegisterGroups<V, kMode, 1>(x, n, group_size, p, qs, m, t, lps[0], acc);
      } else if (group_size == 2 * L) {
        LossRegisterGroups<V, kMode, 2>(x, n, group_size, p, qs, m, t, lps[0], acc);
      } else if (group_size == 4 * L) {
        LossRegisterGroups<V, kMode, 4>(x, n, group_size, p, qs, m, t, lps[0], acc);
      } else {
        in_registers = false;
      }
    }
    // Groups left: all, or only a shorter last one.
    const int64_t done = in_registers ? n / group_size * group_size : 0;
    for (int64_t start = done; start < n; start += group_size) {
      LossAnyGroup<V, kMode, kFast>(x + start, std::min(group_size, n - start), p, qs, m, t, lps[0],
                                    acc);
    }
    for (int k = 0; k < m; ++k) loss[k0 + k] += V::ReduceAdd(acc[k]);
  }
}

/// RowLossFn for ISA V. Per quantile, the squared errors of the whole row go to one double
/// vector accumulator that is summed into loss[k] at the end (ref sums per group slice; the
/// results agree to double round-off). kFast: see KernelTable::row_loss_fast.
template <class V, bool kFast>
void RowLoss(const float* __restrict x, int64_t n, int64_t group_size, const KernelParams& p,
             const float* __restrict quantiles, int nq, double* __restrict loss) {
  switch (p.mode) {
    case KernelMode::kAsym:
      return RowLossMode<V, KernelMode::kAsym, kFast>(x, n, group_size, p, quantiles, nq, loss);
    case KernelMode::kSym:
    case KernelMode::kSymFullRange:
      return RowLossMode<V, KernelMode::kSym, kFast>(x, n, group_size, p, quantiles, nq, loss);
    case KernelMode::kTable:
      return RowLossMode<V, KernelMode::kTable, kFast>(x, n, group_size, p, quantiles, nq, loss);
  }
}

// ---------------------------------------------------------------------------------------------
// dequant_row

// Calls f(offset, n) for each vector of a group: n == kLanes for full vectors. The last vector of
// a group of >= kLanes elements overlaps the previous one (recomputing identical values) instead
// of being partial; groups shorter than a vector get one partial call.
template <class V, class Fn>
inline void ForEachVector(int64_t len, Fn&& f) {
  constexpr int L = V::kLanes;
  if (len < L) {
    f(int64_t{0}, static_cast<int>(len));
    return;
  }
  int64_t i = 0;
  for (; i + L <= len; i += L) f(i, L);
  if (i < len) f(len - L, L);
}

/// DequantRowFn for ISA V.
template <class V>
void DequantRow(const uint8_t* __restrict codes, int64_t n, int64_t group_size,
                const KernelParams& p, const float* __restrict scales,
                const int32_t* __restrict zeros, float* __restrict out) {
  using F = typename V::F;
  using I = typename V::I;
  typename V::Tab nibble_values{};
  if (p.mode == KernelMode::kTable) nibble_values = V::MakeTab(p.table->value_by_nibble);
  for (int64_t g = 0, start = 0; start < n; ++g, start += group_size) {
    const int64_t len = std::min(group_size, n - start);
    const F scale = V::Set1(scales[g]);
    const uint8_t* c = codes + start;
    float* o = out + start;
    auto emit = [&](int64_t i, int m, F v) {
      if (m == V::kLanes) {
        V::Store(o + i, v);
      } else {
        V::StorePartial(o + i, m, v);
      }
    };
    switch (p.mode) {
      case KernelMode::kTable:
        ForEachVector<V>(len, [&](int64_t i, int m) {
          const I code = m == V::kLanes ? V::LoadCodesU8(c + i) : V::LoadCodesU8Partial(c + i, m);
          emit(i, m, V::Mul(V::Lookup(nibble_values, V::AndI(code, V::SetI(15))), scale));
        });
        break;
      case KernelMode::kAsym: {
        const F zp = V::Set1(static_cast<float>(zeros[g]));
        ForEachVector<V>(len, [&](int64_t i, int m) {
          const I code = m == V::kLanes ? V::LoadCodesU8(c + i) : V::LoadCodesU8Partial(c + i, m);
          emit(i, m, V::Mul(V::Sub(V::ToFloat(code), zp), scale));
        });
        break;
      }
      case KernelMode::kSym:
      case KernelMode::kSymFullRange:
        ForEachVector<V>(len, [&](int64_t i, int m) {
          const I code = m == V::kLanes ? V::LoadCodesI8(c + i) : V::LoadCodesI8Partial(c + i, m);
          emit(i, m, V::Mul(V::ToFloat(code), scale));
        });
        break;
    }
  }
}

}  // namespace rtnq::simd
