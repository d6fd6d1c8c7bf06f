// The AVX2 and AVX-512 kernel tables against the scalar reference twin, bit for bit: codes,
// scales, zero points and dequantized values over awkward widths and group sizes, every mode,
// ties, signed zeros and extreme magnitudes; losses of the MSE search to double round-off; every
// element conversion.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/kernels/group_math.h"
#include "core/kernels/kernel_params.h"
#include "core/kernels/kernels.h"
#include "gtest/gtest.h"

namespace rtnq {
namespace {

// ---- modes ----------------------------------------------------------------------------------

struct Mode {
  std::string name;
  KernelParams params;
};

std::vector<Mode> AllModes() {
  std::vector<Mode> modes;
  for (int b = 1; b <= 8; ++b) {
    QuantConfig c;
    c.bits = b;
    c.scheme = Scheme::kSym;
    modes.push_back({"int" + std::to_string(b) + "_sym", MakeKernelParams(c)});
    c.scheme = Scheme::kAsym;
    modes.push_back({"int" + std::to_string(b) + "_asym", MakeKernelParams(c)});
    if (b >= 2) {
      c.scheme = Scheme::kSym;
      c.enable_full_range = true;
      modes.push_back({"int" + std::to_string(b) + "_sym_full", MakeKernelParams(c)});
    }
  }
  for (auto [d, name] : {std::pair{QuantDtype::kNf4, "nf4"}, std::pair{QuantDtype::kFp4, "fp4"},
                         std::pair{QuantDtype::kFp4E2M1, "fp4_e2m1"}}) {
    QuantConfig c;
    c.dtype = d;
    modes.push_back({name, MakeKernelParams(c)});
  }
  return modes;
}

// ---- data -----------------------------------------------------------------------------------

enum class Data {
  kNormal,
  kHeavyTailed,
  kAllZeros,
  kZeroGroup,
  kConstantGroups,
  kTies,
  kSignedZeros,
  kHuge,
  kTiny,
};
constexpr Data kAllData[] = {Data::kNormal,      Data::kHeavyTailed,    Data::kAllZeros,
                             Data::kZeroGroup,   Data::kConstantGroups, Data::kTies,
                             Data::kSignedZeros, Data::kHuge,           Data::kTiny};

const char* DataName(Data d) {
  switch (d) {
    case Data::kNormal:
      return "normal";
    case Data::kHeavyTailed:
      return "heavy_tailed";
    case Data::kAllZeros:
      return "all_zeros";
    case Data::kZeroGroup:
      return "zero_group";
    case Data::kConstantGroups:
      return "constant_groups";
    case Data::kTies:
      return "ties";
    case Data::kSignedZeros:
      return "signed_zeros";
    case Data::kHuge:
      return "huge";
    case Data::kTiny:
      return "tiny";
  }
  return "?";
}

float GroupMin(const float* g, int64_t n) {
  float m = g[0];
  for (int64_t i = 1; i < n; ++i) m = std::min(m, g[i]);
  return m;
}
float GroupMax(const float* g, int64_t n) {
  float m = g[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, g[i]);
  return m;
}

// The scale the kernels will give a group (the spec's steps via group_math.h).
float ScaleOf(const float* g, int64_t n, const KernelParams& p, float quantile) {
  const float mn = GroupMin(g, n), mx = GroupMax(g, n);
  if (p.mode == KernelMode::kTable) {
    return ComputeTableScale(std::max(std::fabs(mn), std::fabs(mx)), *p.table, quantile);
  }
  return ComputeIntScale(mn, mx, p, quantile).scale;
}

// Rewrites a group so that many x / scale land exactly on a rounding tie (int: k + 0.5, table:
// a bucket edge) while its min and max, hence its scale, stay. Half of the groups first get a
// range whose scale is 1 at quantile 1, where every such tie is exact.
void MakeTies(float* g, int64_t n, const KernelParams& p, float quantile, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  if (rng() % 2 == 0) {
    float lo, hi;
    if (p.mode == KernelMode::kTable) {
      hi = p.table->max_value;
      lo = -hi;
    } else if (p.mode == KernelMode::kAsym) {
      lo = -std::floor(p.maxq / 2);
      hi = lo + p.maxq;
    } else if (p.mode == KernelMode::kSymFullRange) {
      hi = p.full_range_divisor - 1;
      lo = -p.full_range_divisor;
    } else {
      hi = p.maxq;
      lo = -p.maxq;
    }
    for (int64_t i = 0; i < n; ++i) g[i] = std::round((lo + (hi - lo) * u(rng)) * 2) / 2;
    g[0] = lo;
    if (n > 1) g[1] = hi;
  }
  const float mn = GroupMin(g, n), mx = GroupMax(g, n);
  const float s = ScaleOf(g, n, p, quantile);
  if (!(s != 0.0f) || !std::isfinite(s)) return;
  for (int64_t i = 2; i < n; ++i) {
    if (rng() % 4 == 0) continue;
    float v;
    if (p.mode == KernelMode::kTable) {
      v = p.table->midpoints[rng() % (p.table->size - 1)] * s;
    } else {
      const float k = std::floor(mn / s + (mx / s - mn / s) * u(rng));
      v = (k + 0.5f) * s;
    }
    if (v >= mn && v <= mx) g[i] = v;
  }
}

std::vector<float> MakeRow(Data kind, int64_t n, int64_t gs, const KernelParams& p, float quantile,
                           std::mt19937& rng) {
  std::vector<float> x(n);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::student_t_distribution<float> heavy(2.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const float center = rng() % 3 == 0 ? 0.0f : 0.3f * normal(rng);
  for (auto& v : x) v = center + 0.02f * normal(rng);
  switch (kind) {
    case Data::kNormal:
      break;
    case Data::kHeavyTailed:
      for (auto& v : x) {
        v = 0.02f * heavy(rng);
        if (rng() % 97 == 0) v *= 100.0f;
      }
      break;
    case Data::kAllZeros:
      for (auto& v : x) v = 0.0f;
      break;
    case Data::kZeroGroup: {
      const int64_t groups = (n + gs - 1) / gs;
      const int64_t g = rng() % groups;
      for (int64_t i = g * gs; i < std::min(n, (g + 1) * gs); ++i) x[i] = 0.0f;
      break;
    }
    case Data::kConstantGroups:
      for (int64_t s = 0; s < n; s += gs) {
        const float c = rng() % 4 == 0 ? 0.0f : normal(rng);
        for (int64_t i = s; i < std::min(n, s + gs); ++i) x[i] = c;
      }
      break;
    case Data::kTies:
      for (int64_t s = 0; s < n; s += gs) MakeTies(&x[s], std::min(gs, n - s), p, quantile, rng);
      break;
    case Data::kSignedZeros:
      // Groups made only of zeros of both signs, or of zeros next to values of one sign, so the
      // extreme that decides the scale is +0 or -0 depending on the order it is met in.
      for (int64_t s = 0; s < n; s += gs) {
        const int flavor = rng() % 3;
        for (int64_t i = s; i < std::min(n, s + gs); ++i) {
          const float z = rng() % 2 ? 0.0f : -0.0f;
          if (flavor == 0 || rng() % 2) {
            x[i] = z;
          } else {
            x[i] = (flavor == 1 ? 1.0f : -1.0f) * std::fabs(normal(rng));
          }
        }
      }
      break;
    case Data::kHuge:
      for (auto& v : x) v *= 1e36f;
      break;
    case Data::kTiny:
      // Scales far below 2^-100 (the loss kernel's exact path) and subnormal elements.
      for (auto& v : x) v *= rng() % 5 == 0 ? 1e-40f : 1e-33f;
      break;
  }
  return x;
}

// ---- comparison helpers ---------------------------------------------------------------------

template <class T>
bool SameBytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <class T>
std::string FirstDiff(const std::vector<T>& a, const std::vector<T>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) {
      return "index " + std::to_string(i) + ": " + std::to_string(+a[i]) + " vs " +
             std::to_string(+b[i]);
    }
  }
  return "none";
}

struct QuantOut {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
  std::vector<float> deq;
};

// Runs quant_row with guard values in every output so that untouched or overrun slots show.
QuantOut RunQuant(const KernelTable& k, const std::vector<float>& x, int64_t gs,
                  const KernelParams& p, float quantile, bool with_deq, bool with_zeros) {
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t groups = GroupsPerRow(n, gs);
  QuantOut o;
  o.codes.assign(n + 64, 0xa5);
  o.scales.assign(groups + 1, -7.0f);
  o.zeros.assign(groups + 1, -7);
  o.deq.assign(n + 64, -7.0f);
  k.quant_row(x.data(), n, gs, p, quantile, o.codes.data(), o.scales.data(),
              with_zeros ? o.zeros.data() : nullptr, with_deq ? o.deq.data() : nullptr);
  return o;
}

class SimdKernelsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    simd_ = KernelsByName(GetParam());
    if (simd_ == nullptr) GTEST_SKIP() << GetParam() << " is not supported on this CPU";
    ASSERT_EQ(simd_->name, GetParam());
  }
  const KernelTable& ref_ = ReferenceKernels();
  const KernelTable* simd_ = nullptr;
};

constexpr int64_t kWidths[] = {1,  2,  3,  7,  8,  15,  16,  17,   31,
                               32, 33, 63, 64, 65, 127, 128, 4095, 4096};
constexpr int64_t kGroupSizes[] = {1, 2, 3, 7, 8, 16, 31, 32, 33, 64, 128, 4096};
constexpr float kQuantiles[] = {1.0f, 0.9f, 0.805f};

// All widths of the list plus a few random ones; each with all group sizes <= width, the
// whole row (group size >= n), and every mode, quantile and data kind.
TEST_P(SimdKernelsTest, QuantRowMatchesReferenceBitForBit) {
  std::mt19937 rng(1234);
  std::vector<int64_t> widths(std::begin(kWidths), std::end(kWidths));
  for (int i = 0; i < 4; ++i) widths.push_back(1 + rng() % 700);
  int cases = 0;
  for (const Mode& mode : AllModes()) {
    for (int64_t n : widths) {
      std::vector<int64_t> sizes;
      for (int64_t gs : kGroupSizes) {
        if (gs < n) sizes.push_back(gs);
      }
      sizes.push_back(n);      // one group per row (group_size -1 or >= n)
      sizes.push_back(n + 5);  // a group size beyond the row: still one group
      sizes.push_back(1 + rng() % n);
      for (int64_t gs : sizes) {
        for (float q : kQuantiles) {
          for (Data kind : kAllData) {
            // Long rows: a rotating subset of the data kinds keeps the run short.
            if (n >= 1024 && (static_cast<int>(kind) + cases) % 3 != 0) continue;
            const std::vector<float> x = MakeRow(kind, n, gs, mode.params, q, rng);
            const bool asym = mode.params.mode == KernelMode::kAsym;
            const bool with_deq = rng() % 4 != 0;
            const bool with_zeros = asym || rng() % 2;
            const QuantOut want = RunQuant(ref_, x, gs, mode.params, q, with_deq, with_zeros);
            const QuantOut got = RunQuant(*simd_, x, gs, mode.params, q, with_deq, with_zeros);
            const std::string where = mode.name + " n=" + std::to_string(n) +
                                      " gs=" + std::to_string(gs) + " q=" + std::to_string(q) +
                                      " data=" + DataName(kind) + (with_deq ? " deq" : "");
            ASSERT_TRUE(SameBytes(want.codes, got.codes))
                << where << " codes " << FirstDiff(want.codes, got.codes);
            ASSERT_TRUE(SameBytes(want.scales, got.scales))
                << where << " scales " << FirstDiff(want.scales, got.scales);
            ASSERT_TRUE(SameBytes(want.zeros, got.zeros))
                << where << " zeros " << FirstDiff(want.zeros, got.zeros);
            ASSERT_TRUE(SameBytes(want.deq, got.deq))
                << where << " deq " << FirstDiff(want.deq, got.deq);
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 10000);
}

// Group sizes of 1, 2, 4 and 8 vectors (AVX2: 8..64, AVX-512: 16..128) have a blocked path that
// reduces 8 or 16 groups at once; rows of several blocks plus leftover groups and a tail.
TEST_P(SimdKernelsTest, QuantRowBlockedGroupSizesMatchReference) {
  std::mt19937 rng(31);
  for (const Mode& mode : AllModes()) {
    for (int64_t gs : {8, 16, 24, 32, 48, 64, 128, 256}) {
      for (int64_t n :
           {gs * 16, gs * 16 * 3, gs * 16 * 2 + gs * 5, gs * 16 + gs * 7 + gs / 2 + 1}) {
        for (Data kind : kAllData) {
          const float q = kQuantiles[rng() % 3];
          const std::vector<float> x = MakeRow(kind, n, gs, mode.params, q, rng);
          const bool with_deq = rng() % 2;
          const QuantOut want = RunQuant(ref_, x, gs, mode.params, q, with_deq, true);
          const QuantOut got = RunQuant(*simd_, x, gs, mode.params, q, with_deq, true);
          const std::string where = mode.name + " n=" + std::to_string(n) +
                                    " gs=" + std::to_string(gs) + " data=" + DataName(kind);
          ASSERT_TRUE(SameBytes(want.codes, got.codes)) << where << " codes";
          ASSERT_TRUE(SameBytes(want.scales, got.scales)) << where << " scales";
          ASSERT_TRUE(SameBytes(want.zeros, got.zeros)) << where << " zeros";
          ASSERT_TRUE(SameBytes(want.deq, got.deq)) << where << " deq";
        }
      }
    }
  }
}

// Random rows of random lengths, random group sizes and arbitrary quantiles in (0, 1].
TEST_P(SimdKernelsTest, QuantRowRandomShapesMatchReference) {
  std::mt19937 rng(99);
  const std::vector<Mode> modes = AllModes();
  for (int c = 0; c < 3000; ++c) {
    const Mode& mode = modes[rng() % modes.size()];
    const int64_t n = 1 + rng() % (rng() % 8 == 0 ? 12000 : 300);
    const int64_t gs = 1 + rng() % (rng() % 2 ? n : 70);
    const float q = std::uniform_real_distribution<float>(0.05f, 1.0f)(rng);
    const Data kind = kAllData[rng() % std::size(kAllData)];
    const std::vector<float> x = MakeRow(kind, n, gs, mode.params, q, rng);
    const QuantOut want = RunQuant(ref_, x, gs, mode.params, q, true, true);
    const QuantOut got = RunQuant(*simd_, x, gs, mode.params, q, true, true);
    const std::string where = mode.name + " n=" + std::to_string(n) + " gs=" + std::to_string(gs) +
                              " data=" + DataName(kind);
    ASSERT_TRUE(SameBytes(want.codes, got.codes)) << where << " codes";
    ASSERT_TRUE(SameBytes(want.scales, got.scales)) << where << " scales";
    ASSERT_TRUE(SameBytes(want.zeros, got.zeros)) << where << " zeros";
    ASSERT_TRUE(SameBytes(want.deq, got.deq)) << where << " deq";
  }
}

// The tie data really produces ties: exact k + 0.5 / bucket-edge quotients, and quotients where
// x * (1/s) and x / s round differently (what the loss kernel's fast path must catch).
TEST(SimdKernelsDataTest, TieDataHitsTies) {
  std::mt19937 rng(5);
  int exact = 0, reciprocal_disagrees = 0;
  for (const Mode& mode : AllModes()) {
    for (float q : kQuantiles) {
      const std::vector<float> x = MakeRow(Data::kTies, 4096, 32, mode.params, q, rng);
      for (int64_t s = 0; s < 4096; s += 32) {
        const float scale = ScaleOf(&x[s], 32, mode.params, q);
        for (int64_t i = s; i < s + 32; ++i) {
          const float y = x[i] / scale;
          const float yr = x[i] * (1.0f / scale);
          if (mode.params.mode != KernelMode::kTable) {
            exact += y - std::floor(y) == 0.5f;
            reciprocal_disagrees += std::nearbyint(y) != std::nearbyint(yr);
          } else {
            exact += TableIndex(y, *mode.params.table) !=
                     TableIndex(std::nextafter(y, 100.0f), *mode.params.table);
          }
        }
      }
    }
  }
  EXPECT_GT(exact, 10000);
  EXPECT_GT(reciprocal_disagrees, 100);
}

// Scales that underflow to 0 (callers reject such tensors, but the kernels must not differ in
// codes, scales or zero points; dequantized NaNs may differ in payload only).
TEST_P(SimdKernelsTest, UnderflowingScalesMatchReference) {
  std::mt19937 rng(7);
  for (const Mode& mode : AllModes()) {
    for (float q : kQuantiles) {
      std::vector<float> x(200);
      for (auto& v : x) v = (rng() % 3) * (rng() % 2 ? 1e-45f : -1e-45f);
      const QuantOut want = RunQuant(ref_, x, 16, mode.params, q, true, true);
      const QuantOut got = RunQuant(*simd_, x, 16, mode.params, q, true, true);
      ASSERT_TRUE(SameBytes(want.codes, got.codes)) << mode.name;
      ASSERT_TRUE(SameBytes(want.scales, got.scales)) << mode.name;
      ASSERT_TRUE(SameBytes(want.zeros, got.zeros)) << mode.name;
      for (size_t i = 0; i < x.size(); ++i) {
        if (std::isnan(want.deq[i]) && std::isnan(got.deq[i])) continue;
        ASSERT_EQ(std::memcmp(&want.deq[i], &got.deq[i], 4), 0) << mode.name << " deq " << i;
      }
    }
  }
}

// ---- row_loss -------------------------------------------------------------------------------

std::vector<float> MseRatios() {
  std::vector<float> r;
  for (int i = 0; i < 40; ++i) r.push_back(static_cast<float>(1.0 - i / 200.0));
  return r;
}

int ArgMin(const std::vector<double>& loss) {
  int best = 0;
  for (int k = 1; k < static_cast<int>(loss.size()); ++k) {
    if (loss[k] < loss[best]) best = k;
  }
  return best;
}

void ExpectLossesMatch(const std::vector<double>& want, const std::vector<double>& got,
                       const std::string& where) {
  for (size_t k = 0; k < want.size(); ++k) {
    // NaN only where a scale underflowed to 0 (tensors callers reject): both must agree.
    if (want[k] == got[k] || (std::isnan(want[k]) && std::isnan(got[k]))) continue;
    ASSERT_LE(std::fabs(want[k] - got[k]), 1e-12 * std::fabs(want[k])) << where << " k=" << k;
  }
  ASSERT_EQ(ArgMin(want), ArgMin(got)) << where;
}

TEST_P(SimdKernelsTest, RowLossMatchesReference) {
  std::mt19937 rng(4321);
  const std::vector<float> ratios = MseRatios();
  const int nq = static_cast<int>(ratios.size());
  const int64_t widths[] = {1, 7, 16, 33, 65, 128, 300, 4096};
  const int64_t sizes[] = {1, 3, 8, 16, 17, 32, 33, 128, 4096};
  int cases = 0;
  for (const Mode& mode : AllModes()) {
    for (int64_t n : widths) {
      for (int64_t gs : sizes) {
        if (gs > n && gs != 4096) continue;  // 4096 > n: one group per row
        for (Data kind : kAllData) {
          if (n >= 1024 && (static_cast<int>(kind) + cases) % 4 != 0) continue;
          const std::vector<float> x = MakeRow(kind, n, gs, mode.params, ratios[rng() % nq], rng);
          std::vector<double> want(nq, 0.0), got(nq, 0.0);
          ref_.row_loss(x.data(), n, gs, mode.params, ratios.data(), nq, want.data());
          simd_->row_loss(x.data(), n, gs, mode.params, ratios.data(), nq, got.data());
          ExpectLossesMatch(want, got,
                            mode.name + " n=" + std::to_string(n) + " gs=" + std::to_string(gs) +
                                " data=" + DataName(kind));
          if (::testing::Test::HasFatalFailure()) return;
          ++cases;
        }
      }
    }
  }
  EXPECT_GT(cases, 1000);
}

// One row of the approximate-loss tests with its exact losses (the reference's).
struct LossRow {
  const Mode& mode;
  int64_t n;
  int64_t gs;
  Data kind;
  std::vector<float> x;
  std::vector<double> exact;
  std::string where;
};

// Calls check(row) for every mode, row width, group size in `group_sizes` and data kind; returns
// how many rows it made.
template <class Check>
int ForEachLossRow(const KernelTable& ref, uint32_t seed,
                   std::initializer_list<int64_t> group_sizes, Check check) {
  std::mt19937 rng(seed);
  const std::vector<float> ratios = MseRatios();
  const int nq = static_cast<int>(ratios.size());
  int rows = 0;
  for (const Mode& mode : AllModes()) {
    for (int64_t n : {1, 7, 16, 33, 65, 128, 300, 1025, 4096}) {
      for (int64_t gs : group_sizes) {
        if (gs > n && gs != 4096) continue;
        for (Data kind : kAllData) {
          LossRow row{mode,
                      n,
                      gs,
                      kind,
                      MakeRow(kind, n, gs, mode.params, ratios[rng() % nq], rng),
                      std::vector<double>(nq, 0.0),
                      mode.name + " n=" + std::to_string(n) + " gs=" + std::to_string(gs) +
                          " data=" + DataName(kind)};
          ref.row_loss(row.x.data(), n, gs, mode.params, ratios.data(), nq, row.exact.data());
          check(row);
          if (::testing::Test::HasFatalFailure()) return rows;
          ++rows;
        }
      }
    }
  }
  return rows;
}

// The approximate losses' documented non-finite cases: NaN where the exact loss is NaN, and
// infinity only where a float32 partial sum overflowed. True when both are finite (to compare).
bool BothFinite(double exact, double approx, const std::string& where) {
  if (std::isnan(exact)) {
    EXPECT_TRUE(std::isnan(approx)) << where;
    return false;
  }
  if (std::isinf(approx)) {
    EXPECT_GT(exact, 1e38) << where;
    return false;
  }
  return true;
}

// row_loss_fast sums squares briefly in float32: within the documented bound of the exact
// losses, on every row shape and data kind row_loss is checked on.
TEST_P(SimdKernelsTest, RowLossFastWithinItsBound) {
  const std::vector<float> ratios = MseRatios();
  const int nq = static_cast<int>(ratios.size());
  const int rows =
      ForEachLossRow(ref_, 4322, {1, 3, 8, 16, 17, 32, 33, 64, 128, 4096}, [&](const LossRow& row) {
        std::vector<double> fast(nq, 0.0);
        simd_->row_loss_fast(row.x.data(), row.n, row.gs, row.mode.params, ratios.data(), nq,
                             fast.data());
        for (int k = 0; k < nq; ++k) {
          const std::string where = row.where + " k=" + std::to_string(k);
          if (!BothFinite(row.exact[k], fast[k], where)) continue;
          ASSERT_LE(std::fabs(fast[k] - row.exact[k]),
                    kFastLossRelError * row.exact[k] + row.n * kFastLossAbsError)
              << where << " exact " << row.exact[k] << " fast " << fast[k];
        }
      });
  EXPECT_GT(rows, 1000);
}

// row_loss_rough: within RoughLossBound of the exact losses on every row shape and data kind
// (ties included, where x * (1/s) and x / s round apart; groups in lanes and long groups), and
// the bound is tight enough to rank ordinary weights: a small fraction of the loss.
TEST_P(SimdKernelsTest, RowLossRoughWithinItsBound) {
  const std::vector<float> ratios = MseRatios();
  const int nq = static_cast<int>(ratios.size());
  const int rows = ForEachLossRow(
      ref_, 4323, {1, 3, 8, 16, 17, 32, 33, 64, 100, 128, 129, 256, 4096}, [&](const LossRow& row) {
        std::vector<double> rough(nq, 0.0);
        RoughLossTerms terms;
        simd_->row_loss_rough(row.x.data(), row.n, row.gs, row.mode.params, ratios.data(), nq,
                              rough.data(), &terms);
        const bool ordinary = row.kind == Data::kNormal && row.n >= 1024 && row.gs >= 32 &&
                              row.mode.params.bits == 4 &&
                              row.mode.params.mode != KernelMode::kTable;
        for (int k = 0; k < nq; ++k) {
          const std::string where = row.where + " k=" + std::to_string(k);
          if (!BothFinite(row.exact[k], rough[k], where)) continue;
          const double bound = RoughLossBound(rough[k], terms, static_cast<double>(row.n));
          ASSERT_LE(std::fabs(rough[k] - row.exact[k]), bound)
              << where << " exact " << row.exact[k] << " rough " << rough[k];
          if (ordinary) {
            EXPECT_LE(bound, 1e-4 * row.exact[k]) << where;
          }
        }
      });
  EXPECT_GT(rows, 1000);
}

// More quantiles than one pass of the kernel holds, and arbitrary quantile values.
TEST_P(SimdKernelsTest, RowLossManyQuantiles) {
  std::mt19937 rng(8);
  std::vector<float> qs;
  for (int i = 0; i < 150; ++i)
    qs.push_back(std::uniform_real_distribution<float>(0.3f, 1.0f)(rng));
  for (const Mode& mode : AllModes()) {
    const std::vector<float> x = MakeRow(Data::kHeavyTailed, 1000, 32, mode.params, 1.0f, rng);
    // The kernels add to what is there.
    std::vector<double> want(qs.size(), 1.0), got(qs.size(), 1.0);
    ref_.row_loss(x.data(), 1000, 32, mode.params, qs.data(), static_cast<int>(qs.size()),
                  want.data());
    simd_->row_loss(x.data(), 1000, 32, mode.params, qs.data(), static_cast<int>(qs.size()),
                    got.data());
    ExpectLossesMatch(want, got, mode.name);
  }
}

// Long groups are evaluated in slices; the loss still covers every element once.
TEST_P(SimdKernelsTest, RowLossPerChannelGroups) {
  std::mt19937 rng(9);
  const std::vector<float> ratios = MseRatios();
  for (const Mode& mode : AllModes()) {
    for (int64_t n : {1023, 1024, 1025, 11008}) {
      const std::vector<float> x = MakeRow(Data::kNormal, n, n, mode.params, 1.0f, rng);
      std::vector<double> want(40), got(40);
      ref_.row_loss(x.data(), n, n, mode.params, ratios.data(), 40, want.data());
      simd_->row_loss(x.data(), n, n, mode.params, ratios.data(), 40, got.data());
      ExpectLossesMatch(want, got, mode.name + " n=" + std::to_string(n));
    }
  }
}

// ---- dequant_row ----------------------------------------------------------------------------

TEST_P(SimdKernelsTest, DequantRowMatchesReference) {
  std::mt19937 rng(11);
  std::vector<int64_t> widths(std::begin(kWidths), std::end(kWidths));
  for (const Mode& mode : AllModes()) {
    for (int64_t n : widths) {
      for (int64_t gs : kGroupSizes) {
        const int64_t g = std::min(gs, n);
        const int64_t groups = GroupsPerRow(n, g);
        // Codes from a real quantization, then random codes of the mode's range; scales and
        // zero points as double quantization could leave them.
        const std::vector<float> x = MakeRow(Data::kHeavyTailed, n, g, mode.params, 1.0f, rng);
        QuantOut q = RunQuant(ref_, x, g, mode.params, 1.0f, false, true);
        q.codes.resize(n);
        q.zeros.resize(groups);
        q.scales.resize(groups);
        for (int pass = 0; pass < 2; ++pass) {
          if (pass == 1) {
            for (auto& c : q.codes) c = static_cast<uint8_t>(rng());
            for (auto& s : q.scales) s = std::normal_distribution<float>(0.0f, 0.1f)(rng);
            for (auto& z : q.zeros) z = static_cast<int32_t>(rng() % 256);
          }
          std::vector<float> want(n + 32, -7.0f), got(n + 32, -7.0f);
          ref_.dequant_row(q.codes.data(), n, g, mode.params, q.scales.data(), q.zeros.data(),
                           want.data());
          simd_->dequant_row(q.codes.data(), n, g, mode.params, q.scales.data(), q.zeros.data(),
                             got.data());
          ASSERT_TRUE(SameBytes(want, got)) << mode.name << " n=" << n << " gs=" << g << " pass "
                                            << pass << " " << FirstDiff(want, got);
        }
      }
    }
  }
}

// ---- conversions ----------------------------------------------------------------------------

// Every 16-bit pattern, at every alignment of the tail.
TEST_P(SimdKernelsTest, HalfAndBf16ToFloatAllPatterns) {
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  for (auto fn : {&KernelTable::bf16_to_float, &KernelTable::f16_to_float}) {
    for (int64_t off : {0, 1, 5}) {
      const int64_t n = 65536 - off;
      std::vector<float> want(n + 8, -7.0f), got(n + 8, -7.0f);
      (ref_.*fn)(all.data() + off, n, want.data());
      (simd_->*fn)(all.data() + off, n, got.data());
      ASSERT_TRUE(SameBytes(want, got)) << "offset " << off << " " << FirstDiff(want, got);
    }
  }
}

// Float bit patterns: random ones, and every pattern in the ranges where rounding is delicate
// (half subnormals and the smallest normals, the overflow boundary 65520, bf16 ties).
std::vector<float> ConversionInputs() {
  std::vector<uint32_t> bits;
  std::mt19937 rng(77);
  for (int i = 0; i < 1 << 20; ++i) bits.push_back(static_cast<uint32_t>(rng()));
  auto range = [&](uint32_t lo, uint32_t hi, uint32_t step) {
    for (uint64_t b = lo; b <= hi; b += step) {
      bits.push_back(static_cast<uint32_t>(b));
      bits.push_back(static_cast<uint32_t>(b) | 0x80000000u);
    }
  };
  range(0x00000000u, 0x00100000u, 1);      // float zero and subnormals
  range(0x33000000u, 0x39000000u, 0x3f);   // half subnormal range and first normals
  range(0x477fe000u, 0x47800100u, 1);      // around 65504 .. 65536: overflow to inf
  range(0x7f7f0000u, 0x7fffffffu, 0x3ff);  // largest floats, inf, NaNs
  range(0x3f7f8000u, 0x3f808000u, 1);      // bf16 ties around 1.0
  range(0x7f800001u, 0x7f800100u, 1);      // signalling NaNs
  range(0x7fc00000u, 0x7fc00100u, 1);      // quiet NaNs
  for (uint32_t e = 0; e < 256; ++e) {     // every exponent with tie and near-tie mantissas
    for (uint32_t m : {0x0u, 0x1u, 0x7fffu, 0x8000u, 0x8001u, 0x18000u, 0xfffu, 0x1000u, 0x1001u,
                       0x3000u, 0x7fffffu}) {
      bits.push_back((e << 23) | m);
      bits.push_back(0x80000000u | (e << 23) | m);
    }
  }
  std::vector<float> f(bits.size());
  std::memcpy(f.data(), bits.data(), bits.size() * 4);
  return f;
}

TEST_P(SimdKernelsTest, FloatToHalfAndBf16MatchReference) {
  const std::vector<float> in = ConversionInputs();
  for (auto fn : {&KernelTable::float_to_bf16, &KernelTable::float_to_f16}) {
    for (int64_t off : {0, 3}) {
      const int64_t n = static_cast<int64_t>(in.size()) - off - 5;
      std::vector<uint16_t> want(n + 8, 0xabcd), got(n + 8, 0xabcd);
      (ref_.*fn)(in.data() + off, n, want.data());
      (simd_->*fn)(in.data() + off, n, got.data());
      ASSERT_TRUE(SameBytes(want, got)) << "offset " << off << " " << FirstDiff(want, got);
    }
  }
}

// Short calls exercise every tail length.
TEST_P(SimdKernelsTest, ConversionsShortLengths) {
  const std::vector<float> in = ConversionInputs();
  std::vector<uint16_t> h(64);
  for (int i = 0; i < 64; ++i) h[i] = static_cast<uint16_t>(0x7bf0 + i * 37);
  for (int64_t n = 0; n <= 40; ++n) {
    std::vector<uint16_t> w16(48, 1), g16(48, 1);
    ref_.float_to_f16(in.data() + 1000, n, w16.data());
    simd_->float_to_f16(in.data() + 1000, n, g16.data());
    ASSERT_TRUE(SameBytes(w16, g16)) << n;
    ref_.float_to_bf16(in.data() + 1000, n, w16.data());
    simd_->float_to_bf16(in.data() + 1000, n, g16.data());
    ASSERT_TRUE(SameBytes(w16, g16)) << n;
    std::vector<float> w32(48, 1.0f), g32(48, 1.0f);
    ref_.f16_to_float(h.data(), n, w32.data());
    simd_->f16_to_float(h.data(), n, g32.data());
    ASSERT_TRUE(SameBytes(w32, g32)) << n;
    ref_.bf16_to_float(h.data(), n, w32.data());
    simd_->bf16_to_float(h.data(), n, g32.data());
    ASSERT_TRUE(SameBytes(w32, g32)) << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, SimdKernelsTest, ::testing::Values("avx2", "avx512"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// The dispatcher picks a table this CPU supports, and "reference" is always there.
TEST(SimdKernelsDispatchTest, BestAndByName) {
  ASSERT_NE(KernelsByName("reference"), nullptr);
  EXPECT_EQ(KernelsByName("bogus"), nullptr);
  const KernelTable& best = BestKernels();
  EXPECT_EQ(KernelsByName(best.name), &best);
}

}  // namespace
}  // namespace rtnq
