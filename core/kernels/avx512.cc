// AVX-512 (F, BW, VL, DQ) kernels: simd_impl.h over 16-lane vectors, plus the conversions.
// Compiled with per-file -mavx512* flags; reached only through dispatch.cc after a CPU check.
// GCC 12 reports its own _mm512_undefined_* placeholders inside these headers as maybe
// (maybe) uninitialized (GCC PR 105593, fixed in 13); the pragma covers only the header's lines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

#include "core/kernels/simd_impl.h"
#include "core/kernels/simd_rough_loss.h"
#include "core/kernels/simd_tables.h"

namespace rtnq {
namespace {

struct V512 {
  static constexpr int kLanes = 16;
  // Zen 4 divides 16 floats in about 6 cycles, no slower than the multiply-and-check path.
  static constexpr bool kReciprocalLoss = false;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  using D = __m512d;
  using Tab = __m512;
  using TabI = __m512i;

  static M FirstN(int n) { return static_cast<M>((1u << n) - 1u); }
  static M LanesFrom(int k) { return static_cast<M>(0xffffu << k); }

  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F LoadPartial(const float* p, int64_t n, F fill) {
    return _mm512_mask_loadu_ps(fill, FirstN(static_cast<int>(n)), p);
  }
  static void StorePartial(float* p, int n, F v) { _mm512_mask_storeu_ps(p, FirstN(n), v); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static I SetI(int32_t v) { return _mm512_set1_epi32(v); }

  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm512_div_ps(a, b); }
  // vminps/vmaxps: Min(a, b) = a < b ? a : b, Max(a, b) = a > b ? a : b (b on NaN or equality).
  static F Min(F a, F b) { return _mm512_min_ps(a, b); }
  static F Max(F a, F b) { return _mm512_max_ps(a, b); }
  static F Round(F v) {
    return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static F Abs(F v) { return _mm512_abs_ps(v); }
  // Horizontal reductions in 256/128-bit halves.
  static __m256 High256(F v) {
    return _mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  static float ReduceMin(F v) {
    const __m256 h = _mm256_min_ps(_mm512_castps512_ps256(v), High256(v));
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_min_ss(m, _mm_movehdup_ps(m)));
  }
  static float ReduceMax(F v) {
    const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v), High256(v));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  }

  // q is integer-valued (or NaN, which converts to 0x80000000 and so stores byte 0 as CodeByte).
  static I ToInt(F q) { return _mm512_cvtps_epi32(q); }
  static F ToFloat(I v) { return _mm512_cvtepi32_ps(v); }
  static I AndI(I a, I b) { return _mm512_and_si512(a, b); }
  static void StoreI(int32_t* p, I v) { _mm512_storeu_si512(p, v); }
  // Lane j of the result is op over all lanes of v[j] (a transposing tree: 15 shuffle pairs).
  // The tree leaves lane 4c + e holding its (c + 4e)-th input, so inputs are taken in that order.
  template <class Op>
  static F ReduceLanes(const F* v, Op op) {
    auto src = [v](int k) { return v[4 * (k % 4) + k / 4]; };
    F w[8], u[4], t[2];
    for (int i = 0; i < 8; ++i) {
      const F a = src(2 * i), b = src(2 * i + 1);
      w[i] = op(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    for (int i = 0; i < 4; ++i) {
      const F a = w[2 * i], b = w[2 * i + 1];
      u[i] = op(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
    }
    for (int i = 0; i < 2; ++i) {
      const F a = u[2 * i], b = u[2 * i + 1];
      t[i] = op(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    return op(_mm512_shuffle_ps(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)),
              _mm512_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  static void StoreCodes(uint8_t* p, I v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
  }
  static void StoreCodes4(uint8_t* p, I a, I b, I c, I d) {
    StoreCodes(p, a);
    StoreCodes(p + 16, b);
    StoreCodes(p + 32, c);
    StoreCodes(p + 48, d);
  }
  static void StoreCodesPartial(uint8_t* p, int n, I v) {
    _mm512_mask_cvtepi32_storeu_epi8(p, FirstN(n), v);
  }
  static I LoadCodesU8(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I LoadCodesI8(const uint8_t* p) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I LoadCodesU8Partial(const uint8_t* p, int n) {
    return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(FirstN(n), p));
  }
  static I LoadCodesI8Partial(const uint8_t* p, int n) {
    return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(FirstN(n), p));
  }

  static F ZeroOutside(F v, M keep) { return _mm512_maskz_mov_ps(keep, v); }
  static M NoLanes() { return 0; }
  template <int kPredicate>
  static M Cmp(F a, F b) {
    return _mm512_cmp_ps_mask(a, b, kPredicate);
  }
  static M And(M a, M b) { return static_cast<M>(a & b); }
  static F Select(M m, F yes, F no) { return _mm512_mask_blend_ps(m, no, yes); }
  static F Neg(F v) { return _mm512_xor_ps(v, _mm512_set1_ps(-0.0f)); }
  static M Or(M a, M b) { return static_cast<M>(a | b); }
  static bool Any(M m) { return m != 0; }
  // Lanes where !(a < b), NaN included.
  static M NotLess(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLT_UQ); }

  static Tab MakeTab(const float* t16) { return _mm512_loadu_ps(t16); }
  static TabI MakeTabI(const int32_t* t16) { return _mm512_loadu_si512(t16); }
  static F Lookup(const Tab& t, I idx) { return _mm512_permutexvar_ps(idx, t); }
  static I LookupI(const TabI& t, I idx) { return _mm512_permutexvar_epi32(idx, t); }
  static I AddIfGreater(I idx, F y, F edge, int32_t step) {
    return _mm512_mask_add_epi32(idx, _mm512_cmp_ps_mask(y, edge, _CMP_GT_OQ), idx,
                                 _mm512_set1_epi32(step));
  }
  static I SelectIfNaN(F y, I if_nan, I idx) {
    return _mm512_mask_mov_epi32(idx, _mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q), if_nan);
  }

  static D ZeroD() { return _mm512_setzero_pd(); }
  static D AddD(D a, D b) { return _mm512_add_pd(a, b); }
  static double ReduceAdd(D v) {
    const __m256d h =
        _mm256_add_pd(_mm512_castpd512_pd256(v), _mm256_castps_pd(High256(_mm512_castpd_ps(v))));
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  // d*d is exact in double (a float has 24 significant bits), so the FMA equals mul then add.
  static D AddSquares(D acc, F d) {
    const D lo = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
    const D hi = _mm512_cvtps_pd(High256(d));
    return _mm512_fmadd_pd(hi, hi, _mm512_fmadd_pd(lo, lo, acc));
  }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static uint32_t MaskBits(M m) { return m; }
  // 1 / v within 1.07 u: vrcp14ps (2^-14) and one Newton step.
  static F Recip(F v) {
    const F r = _mm512_rcp14_ps(v);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(v, r, _mm512_set1_ps(1.0f)), r);
  }
  // The lanes selected by `bits`, in order, then zeros.
  static F Compress(F v, uint32_t bits) {
    return _mm512_maskz_compress_ps(static_cast<__mmask16>(bits), v);
  }
  static float ReduceAddF(F v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), High256(v));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  // r[i] lane j <- r[j] lane i: pairs of floats, then of doubles, then 128-bit blocks twice.
  static void Transpose(F* r) {
    F t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    auto pd = [](F v) { return _mm512_castps_pd(v); };
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[i]), pd(t[i + 2])));
      r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[i]), pd(t[i + 2])));
      r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[i + 1]), pd(t[i + 3])));
      r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[i + 1]), pd(t[i + 3])));
    }
    for (int h = 0; h < 16; h += 8) {
      for (int i = 0; i < 4; ++i) {
        t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0x88);
        t[h + 4 + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0xdd);
      }
    }
    for (int i = 0; i < 8; ++i) {
      r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
      r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    }
  }
  static D AddWidened(D acc, F v) {
    return _mm512_add_pd(_mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(v))),
                         _mm512_cvtps_pd(High256(v)));
  }
};

// ---- conversions ----------------------------------------------------------------------------

__mmask16 Mask16(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

void Bf16ToFloat512(const uint16_t* __restrict in, int64_t n, float* __restrict out) {
  auto one = [](__m256i h) { return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16); };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_si512(out + i, one(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i))));
  }
  if (i < n) {
    const __mmask16 m = Mask16(n - i);
    _mm512_mask_storeu_epi32(out + i, m, one(_mm256_maskz_loadu_epi16(m, in + i)));
  }
}

// vcvtph2ps quiets signalling NaNs; HalfToFloat keeps every NaN's bits (sign, payload, quiet
// bit) shifted into place, so NaN lanes are rebuilt that way.
__m512 HalfToFloatVec(__m256i h) {
  __m512 f = _mm512_cvtph_ps(h);
  const __m512i h32 = _mm512_cvtepu16_epi32(h);
  const __m512i mag = _mm512_and_si512(h32, _mm512_set1_epi32(0x7fff));
  const __mmask16 nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7c00));
  if (nan) {
    const __m512i bits = _mm512_or_si512(
        _mm512_or_si512(_mm512_and_si512(_mm512_slli_epi32(h32, 16),
                                         _mm512_set1_epi32(static_cast<int32_t>(0x80000000u))),
                        _mm512_slli_epi32(mag, 13)),
        _mm512_set1_epi32(0x70000000));
    f = _mm512_mask_mov_ps(f, nan, _mm512_castsi512_ps(bits));
  }
  return f;
}

void F16ToFloat512(const uint16_t* __restrict in, int64_t n, float* __restrict out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i,
                     HalfToFloatVec(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i))));
  }
  if (i < n) {
    const __mmask16 m = Mask16(n - i);
    _mm512_mask_storeu_ps(out + i, m, HalfToFloatVec(_mm256_maskz_loadu_epi16(m, in + i)));
  }
}

// FloatToBf16 of dtype.h: round to nearest even on the bits; NaN keeps its top bits, made quiet.
__m256i FloatToBf16Vec(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
}

void FloatToBf16512(const float* __restrict in, int64_t n, uint16_t* __restrict out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        FloatToBf16Vec(_mm512_loadu_ps(in + i)));
  }
  if (i < n) {
    const __mmask16 m = Mask16(n - i);
    _mm256_mask_storeu_epi16(out + i, m, FloatToBf16Vec(_mm512_maskz_loadu_ps(m, in + i)));
  }
}

// vcvtps2ph rounds like FloatToHalf (nearest even, subnormals, overflow to inf); for NaN it keeps
// the top payload bits while FloatToHalf returns the canonical sign | 0x7e00, so NaN lanes are
// masked down to that.
__m256i FloatToHalfVec(__m512 f) {
  __m256i h = _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT);
  const __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
  if (nan) {
    h = _mm256_mask_mov_epi16(h, nan,
                              _mm256_and_si256(h, _mm256_set1_epi16(static_cast<int16_t>(0xfe00))));
  }
  return h;
}

void FloatToF16512(const float* __restrict in, int64_t n, uint16_t* __restrict out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        FloatToHalfVec(_mm512_loadu_ps(in + i)));
  }
  if (i < n) {
    const __mmask16 m = Mask16(n - i);
    _mm256_mask_storeu_epi16(out + i, m, FloatToHalfVec(_mm512_maskz_loadu_ps(m, in + i)));
  }
}

}  // namespace

const KernelTable& Avx512Kernels() {
  static const KernelTable table = {"avx512",
                                    simd::QuantRow<V512>,
                                    simd::RowLoss<V512, false>,
                                    simd::RowLoss<V512, true>,
                                    simd::RowLossRough<V512>,
                                    simd::DequantRow<V512>,
                                    Bf16ToFloat512,
                                    F16ToFloat512,
                                    FloatToBf16512,
                                    FloatToF16512};
  return table;
}

}  // namespace rtnq
