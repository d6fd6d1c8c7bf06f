// AVX2 + FMA + F16C kernels: simd_impl.h over 8-lane vectors, plus the conversions.
// Compiled with per-file -mavx2 -mfma -mf16c; reached only through dispatch.cc after a CPU check.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "core/kernels/simd_impl.h"
#include "core/kernels/simd_rough_loss.h"
#include "core/kernels/simd_tables.h"

namespace rtnq {
namespace {

// Lane i of the result is all ones when i < n (n in [0, 8]).
__m256i FirstNMask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// For each 8-bit lane mask, the indices of its set lanes in order, then 8 (clear the lane).
constexpr std::array<std::array<uint8_t, 8>, 256> MakeCompressIndex() {
  std::array<std::array<uint8_t, 8>, 256> t{};
  for (int m = 0; m < 256; ++m) {
    int n = 0;
    for (int i = 0; i < 8; ++i) {
      if (m >> i & 1) t[m][n++] = static_cast<uint8_t>(i);
    }
    while (n < 8) t[m][n++] = 8;
  }
  return t;
}
constexpr std::array<std::array<uint8_t, 8>, 256> kCompressIndex = MakeCompressIndex();

struct V256 {
  static constexpr int kLanes = 8;
  // 8-lane divisions are relatively dear on Zen 4: multiply by 1/s and check for near ties.
  static constexpr bool kReciprocalLoss = true;
  using F = __m256;
  using I = __m256i;
  using M = __m256;  // all-ones lanes
  using D = __m256d;
  struct Tab {
    __m256 lo, hi;
  };
  struct TabI {
    __m256i lo, hi;
  };

  static M FirstN(int n) { return _mm256_castsi256_ps(FirstNMask(n)); }
  static M LanesFrom(int k) {
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(k - 1)));
  }

  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F LoadPartial(const float* p, int64_t n, F fill) {
    const __m256i m = FirstNMask(n);
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void StorePartial(float* p, int n, F v) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    std::memcpy(p, tmp, sizeof(float) * n);
  }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static I SetI(int32_t v) { return _mm256_set1_epi32(v); }

  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm256_div_ps(a, b); }
  // vminps/vmaxps: Min(a, b) = a < b ? a : b, Max(a, b) = a > b ? a : b (b on NaN or equality).
  static F Min(F a, F b) { return _mm256_min_ps(a, b); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F Round(F v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F Abs(F v) { return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static float ReduceMin(F v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
  static float ReduceMax(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }

  // q is integer-valued (or NaN, which converts to 0x80000000 and so stores byte 0 as CodeByte).
  static I ToInt(F q) { return _mm256_cvtps_epi32(q); }
  static F ToFloat(I v) { return _mm256_cvtepi32_ps(v); }
  static I AndI(I a, I b) { return _mm256_and_si256(a, b); }
  static void StoreI(int32_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  // Lane j of the result is op over all lanes of v[j] (a transposing tree: 7 shuffle pairs).
  // The tree leaves lane 4l + e holding its (2e + l)-th input, so inputs are taken in that order.
  template <class Op>
  static F ReduceLanes(const F* v, Op op) {
    constexpr int kSrc[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    F w[4], u[2];
    for (int i = 0; i < 4; ++i) {
      const F a = v[kSrc[2 * i]], b = v[kSrc[2 * i + 1]];
      w[i] = op(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
    }
    for (int i = 0; i < 2; ++i) {
      const F a = w[2 * i], b = w[2 * i + 1];
      u[i] = op(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    return op(_mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
              _mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  // The low byte of each lane, in lane order, in the low 8 bytes of an xmm.
  static __m128i LowBytes(I v) {
    const __m256i in_lane = _mm256_shuffle_epi8(
        v, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8,
                            12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
    return _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(in_lane, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1)));
  }
  static void StoreCodes(uint8_t* p, I v) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), LowBytes(v));
  }
  // 32 codes: the low bytes of a, b, c, d in order. packs_epi32 keeps -128..255 exact and
  // turns 0x80000000 (NaN) into -32768, whose low byte is 0 like CodeByte's; masking to the low
  // byte makes packus_epi16 exact.
  static void StoreCodes4(uint8_t* p, I a, I b, I c, I d) {
    const __m256i low = _mm256_set1_epi16(0xff);
    const __m256i ab = _mm256_and_si256(_mm256_packs_epi32(a, b), low);
    const __m256i cd = _mm256_and_si256(_mm256_packs_epi32(c, d), low);
    // Bytes now run a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7; the dword permute restores order.
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd),
                                                      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), bytes);
  }
  static void StoreCodesPartial(uint8_t* p, int n, I v) {
    alignas(16) uint8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), LowBytes(v));
    std::memcpy(p, tmp, n);
  }
  static I LoadCodesU8(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static I LoadCodesI8(const uint8_t* p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static I LoadCodesU8Partial(const uint8_t* p, int n) {
    uint8_t tmp[8] = {};
    std::memcpy(tmp, p, n);
    return LoadCodesU8(tmp);
  }
  static I LoadCodesI8Partial(const uint8_t* p, int n) {
    uint8_t tmp[8] = {};
    std::memcpy(tmp, p, n);
    return LoadCodesI8(tmp);
  }

  static F ZeroOutside(F v, M keep) { return _mm256_and_ps(v, keep); }
  static M NoLanes() { return _mm256_setzero_ps(); }
  template <int kPredicate>
  static M Cmp(F a, F b) {
    return _mm256_cmp_ps(a, b, kPredicate);
  }
  static M And(M a, M b) { return _mm256_and_ps(a, b); }
  static F Select(M m, F yes, F no) { return _mm256_blendv_ps(no, yes, m); }
  static F Neg(F v) { return _mm256_xor_ps(v, _mm256_set1_ps(-0.0f)); }
  static M Or(M a, M b) { return _mm256_or_ps(a, b); }
  static bool Any(M m) { return _mm256_movemask_ps(m) != 0; }
  // Lanes where !(a < b), NaN included.
  static M NotLess(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_NLT_UQ); }

  static Tab MakeTab(const float* t16) { return {_mm256_loadu_ps(t16), _mm256_loadu_ps(t16 + 8)}; }
  static TabI MakeTabI(const int32_t* t16) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t16)),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t16 + 8))};
  }
  // idx in [0, 16): bit 3 picks the half (moved to the sign bit for blendv), bits 0-2 the lane.
  static F Lookup(const Tab& t, I idx) {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.lo, idx),
                            _mm256_permutevar8x32_ps(t.hi, idx),
                            _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
  }
  static I LookupI(const TabI& t, I idx) {
    return _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t.lo, idx)),
                         _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t.hi, idx)),
                         _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28))));
  }
  static I AddIfGreater(I idx, F y, F edge, int32_t step) {
    const __m256i gt = _mm256_castps_si256(_mm256_cmp_ps(y, edge, _CMP_GT_OQ));
    return _mm256_add_epi32(idx, _mm256_and_si256(gt, _mm256_set1_epi32(step)));
  }
  static I SelectIfNaN(F y, I if_nan, I idx) {
    return _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(idx), _mm256_castsi256_ps(if_nan), _mm256_cmp_ps(y, y, _CMP_UNORD_Q)));
  }

  static D ZeroD() { return _mm256_setzero_pd(); }
  static D AddD(D a, D b) { return _mm256_add_pd(a, b); }
  static double ReduceAdd(D v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  // d*d is exact in double (a float has 24 significant bits), so the FMA equals mul then add.
  static D AddSquares(D acc, F d) {
    const D lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
    const D hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
    return _mm256_fmadd_pd(hi, hi, _mm256_fmadd_pd(lo, lo, acc));
  }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static uint32_t MaskBits(M m) { return static_cast<uint32_t>(_mm256_movemask_ps(m)); }
  // 1 / v within 1.07 u: vrcpps (1.5 * 2^-12) and two Newton steps.
  static F Recip(F v) {
    const F one = _mm256_set1_ps(1.0f);
    F r = _mm256_rcp_ps(v);
    r = _mm256_fmadd_ps(r, _mm256_fnmadd_ps(v, r, one), r);
    return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(v, r, one), r);
  }
  // The lanes selected by `bits`, in order, then zeros (a permutation from kCompressIndex, whose
  // index 8 marks the lanes to clear).
  static F Compress(F v, uint32_t bits) {
    const __m256i idx = _mm256_cvtepu8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(kCompressIndex[bits].data())));
    const F moved = _mm256_permutevar8x32_ps(v, idx);
    return _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7))),
                            moved);
  }
  static float ReduceAddF(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  // r[i] lane j <- r[j] lane i: pairs, quadruples, then 128-bit halves.
  static void Transpose(F* r) {
    F t[8], q[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      q[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      q[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      q[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      q[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm256_permute2f128_ps(q[i], q[i + 4], 0x20);
      r[i + 4] = _mm256_permute2f128_ps(q[i], q[i + 4], 0x31);
    }
  }
  static D AddWidened(D acc, F v) {
    return _mm256_add_pd(_mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v))),
                         _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
};

// ---- conversions ----------------------------------------------------------------------------

// Runs f on 8 elements at a time; the tail goes through zero-padded buffers.
template <class In, class Out, class Fn>
void Convert8(const In* __restrict in, int64_t n, Out* __restrict out, Fn f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) f(in + i, out + i);
  if (i < n) {
    In tin[8] = {};
    Out tout[8];
    std::memcpy(tin, in + i, sizeof(In) * (n - i));
    f(tin, tout);
    std::memcpy(out + i, tout, sizeof(Out) * (n - i));
  }
}

void Bf16ToFloat256(const uint16_t* __restrict in, int64_t n, float* __restrict out) {
  Convert8(in, n, out, [](const uint16_t* s, float* d) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm256_slli_epi32(h, 16));
  });
}

// vcvtph2ps quiets signalling NaNs; HalfToFloat keeps every NaN's bits (sign, payload, quiet
// bit) shifted into place, so NaN lanes are rebuilt that way.
void F16ToFloat256(const uint16_t* __restrict in, int64_t n, float* __restrict out) {
  Convert8(in, n, out, [](const uint16_t* s, float* d) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
    __m256 f = _mm256_cvtph_ps(h);
    const __m256i h32 = _mm256_cvtepu16_epi32(h);
    const __m256i mag = _mm256_and_si256(h32, _mm256_set1_epi32(0x7fff));
    const __m256i nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7c00));
    if (!_mm256_testz_si256(nan, nan)) {
      const __m256i bits = _mm256_or_si256(
          _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(h32, 16),
                                           _mm256_set1_epi32(static_cast<int32_t>(0x80000000u))),
                          _mm256_slli_epi32(mag, 13)),
          _mm256_set1_epi32(0x70000000));
      f = _mm256_blendv_ps(f, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(nan));
    }
    _mm256_storeu_ps(d, f);
  });
}

// FloatToBf16 of dtype.h: round to nearest even on the bits; NaN keeps its top bits, made quiet.
void FloatToBf16256(const float* __restrict in, int64_t n, uint16_t* __restrict out) {
  Convert8(in, n, out, [](const float* s, uint16_t* d) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    // Signed compare is enough: |u| <= 0x7fffffff.
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
    // Every lane is in [0, 0xffff], so the unsigned-saturating pack is exact.
    const __m128i packed =
        _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d), packed);
  });
}

// vcvtps2ph rounds like FloatToHalf (nearest even, subnormals, overflow to inf); for NaN it keeps
// the top payload bits while FloatToHalf returns the canonical sign | 0x7e00, so NaN lanes are
// masked down to that.
void FloatToF16256(const float* __restrict in, int64_t n, uint16_t* __restrict out) {
  Convert8(in, n, out, [](const float* s, uint16_t* d) {
    const __m256 f = _mm256_loadu_ps(s);
    __m128i h = _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT);
    const __m256 nan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
    if (_mm256_movemask_ps(nan)) {
      const __m256i n32 = _mm256_castps_si256(nan);
      const __m128i n16 =
          _mm_packs_epi32(_mm256_castsi256_si128(n32), _mm256_extracti128_si256(n32, 1));
      const __m128i keep = _mm_or_si128(_mm_set1_epi16(static_cast<int16_t>(0xfe00)),
                                        _mm_andnot_si128(n16, _mm_set1_epi16(-1)));
      h = _mm_and_si128(h, keep);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d), h);
  });
}

}  // namespace

const KernelTable& Avx2Kernels() {
  static const KernelTable table = {"avx2",
                                    simd::QuantRow<V256>,
                                    simd::RowLoss<V256, false>,
                                    simd::RowLoss<V256, true>,
                                    simd::RowLossRough<V256>,
                                    simd::DequantRow<V256>,
                                    Bf16ToFloat256,
                                    F16ToFloat256,
                                    FloatToBf16256,
                                    FloatToF16256};
  return table;
}

}  // namespace rtnq
