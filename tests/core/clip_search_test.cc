// The MSE clip search's ranking: the fast losses (squares briefly summed in float32) must always
// lead to the ratio the exact losses choose, falling back to the exact losses when unsure.
#include "core/clip_search.h"

#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/quantize.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::internal {
namespace {

using ::rtnq::testing::IsOk;

RatioLosses Losses(std::initializer_list<std::pair<int, double>> set, double rest) {
  RatioLosses l;
  l.fill(rest);
  for (auto [k, v] : set) l[k] = v;
  return l;
}

TEST(ClipRatios, AreOneMinusIOver200InFloat) {
  const auto r = ClipRatios();
  EXPECT_EQ(r[0], 1.0f);
  EXPECT_EQ(r[1], 0.995f);
  EXPECT_EQ(r[39], static_cast<float>(1.0 - 39 / 200.0));
}

std::vector<int> All() {
  std::vector<int> all;
  for (int k = 0; k < kClipRatios; ++k) all.push_back(k);
  return all;
}

TEST(BestRatio, FirstStrictlySmallestMean) {
  EXPECT_EQ(BestRatio(All(), Losses({{7, 1.0}}, 2.0), 10), 7);
  EXPECT_EQ(BestRatio(All(), Losses({{7, 1.0}, {3, 1.0}}, 2.0), 10), 3);  // ties keep the first
  EXPECT_EQ(BestRatio(All(), Losses({}, 0.0), 10), 0);
  EXPECT_EQ(BestRatio({5, 9, 30}, Losses({{7, 1.0}, {9, 1.5}}, 2.0), 10), 9);  // only candidates
  // Totals that differ but whose means round to the same double tie, as the spec's means do.
  const double a = 1.0, b = std::nextafter(1.0, 2.0);
  if (a / 3.0 == b / 3.0) {
    EXPECT_EQ(BestRatio(All(), Losses({{0, b}, {1, a}}, 5.0), 3.0), 0);
  }
}

TEST(Contenders, ClearWinnerStandsAlone) {
  const RatioLosses bound = Losses({}, 1e-4);
  EXPECT_EQ(Contenders(All(), Losses({{12, 1.0}}, 1.001), bound), std::vector<int>{12});
}

TEST(Contenders, KeepsEveryRatioWithinTheBounds) {
  // 30 is within the two bounds of the best, 31 just outside them.
  const RatioLosses approx = Losses({{12, 1.0}, {30, 1.0 + 1.9e-4}, {31, 1.0 + 2.1e-4}}, 2.0);
  EXPECT_EQ(Contenders(All(), approx, Losses({}, 1e-4)), (std::vector<int>{12, 30}));
  // Per-ratio bounds: a wide one keeps its ratio.
  EXPECT_EQ(Contenders(All(), approx, Losses({{31, 1e-3}}, 1e-4)), (std::vector<int>{12, 30, 31}));
  // Only the candidates given are considered.
  EXPECT_EQ(Contenders({30, 31}, approx, Losses({}, 1e-4)), (std::vector<int>{30, 31}));
  // All equal (e.g. all-zero weights): nothing can be ruled out.
  EXPECT_EQ(Contenders(All(), Losses({}, 0.0), Losses({}, 0.0)), All());
}

TEST(Contenders, NonFiniteValuesRuleNothingOut) {
  const RatioLosses bound = Losses({}, 1e-6);
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(Contenders(All(), Losses({{3, inf}}, 1.0), bound), All());
  EXPECT_EQ(Contenders(All(), Losses({{3, std::nan("")}}, 1.0), bound), All());
  EXPECT_EQ(Contenders(All(), Losses({{3, 0.5}}, 1.0), Losses({{5, inf}}, 1e-6)), All());
}

// The best kernels (rough, then fast ranking, then exact losses for the ratios left) choose what
// the reference kernels (exact losses only) choose, on data where the approximate sums are
// clear, tied, overflowing or underflowing.
TEST(SearchClipRatio, BestKernelsChooseWhatTheReferenceChooses) {
  auto ref = Engine::Create({.threads = 2, .kernels = "reference"});
  auto best = Engine::Create({.threads = 2, .kernels = ""});
  ASSERT_THAT(ref, IsOk());
  ASSERT_THAT(best, IsOk());
  std::mt19937 rng(77);
  struct Case {
    const char* name;
    float scale;        // of Student-t values; 0 = all zeros
    bool grid = false;  // rounded to multiples of 0.01: many ties, many equal losses
  };
  const Case cases[] = {
      {"normal", 0.02f}, {"zeros", 0.0f}, {"huge", 1e25f}, {"tiny", 1e-30f}, {"grid", 0.02f, true}};
  std::vector<QuantConfig> configs(6);
  configs[1].scheme = Scheme::kSym;
  configs[1].group_size = 128;
  configs[2].dtype = QuantDtype::kNf4;
  configs[2].group_size = 64;
  configs[3].bits = 8;
  configs[3].group_size = -1;
  configs[4].bits = 3;
  configs[4].group_size = 16;
  configs[5].group_size = 33;
  int compared = 0;
  for (QuantConfig cfg : configs) {
    cfg.enable_mse_search = true;
    for (const Case& c : cases) {
      for (int64_t cols : {64, 200, 1024}) {
        std::student_t_distribution<float> t(3.0f);
        std::vector<float> w(24 * cols);
        for (float& x : w) {
          x = c.scale * t(rng);
          if (c.grid) x = 0.01f * std::nearbyint(x / 0.01f);
        }
        const TensorInput in{"w",
                             ElemType::kF32,
                             {24, cols},
                             {reinterpret_cast<const uint8_t*>(w.data()), w.size() * 4}};
        QuantizeOptions opts;
        auto want = QuantizeTensor(in, cfg, opts, **ref);
        auto got = QuantizeTensor(in, cfg, opts, **best);
        ASSERT_EQ(want.ok(), got.ok()) << c.name << " " << cols;
        if (!want.ok()) continue;  // e.g. scales underflowing: both refuse alike
        EXPECT_EQ(got->metrics.clip_ratio, want->metrics.clip_ratio) << c.name << " " << cols;
        EXPECT_EQ(got->fake, want->fake) << c.name << " " << cols;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 50);
}

// The exact choice for a float32 matrix: every ratio's exact loss (the SIMD row_loss, itself
// tested against the reference twin), the first smallest mean.
float ExactChoice(const KernelTable& kernels, const RowPass& pass, const float* w, int64_t rows) {
  const std::array<float, kClipRatios> ratios = ClipRatios();
  RatioLosses total{};
  for (int64_t r = 0; r < rows; ++r) {
    kernels.row_loss(w + r * pass.cols, pass.cols, pass.group_size, pass.params, ratios.data(),
                     kClipRatios, total.data());
  }
  std::vector<int> all(kClipRatios);
  for (int k = 0; k < kClipRatios; ++k) all[k] = k;
  return ratios[BestRatio(all, total, static_cast<double>(rows * pass.cols))];
}

// Each of the three passes is where some search ends, and the choice is always the exact one:
// ordinary int4 g32 weights are decided by the rough pass alone; int3 g64 and int8 per-channel
// Laplace weights (flatter losses near the optimum) sometimes need the fast or the exact pass;
// all-zero weights tie every ratio and need all three.
TEST(SearchClipRatio, EachPassDecidesSomeSearchesAndAllAgreeWithTheExactChoice) {
  auto engine = Engine::Create({.threads = 2, .kernels = ""});
  ASSERT_THAT(engine, IsOk());
  const KernelTable& kernels = (*engine)->kernels();
  if (kernels.row_loss_rough == nullptr) GTEST_SKIP() << "no SIMD kernels on this CPU";
  enum class Kind { kStudentT, kLaplace, kZeros };
  struct Case {
    const char* name;
    int bits;
    Scheme scheme;
    int64_t group_size;
    Kind kind;
    int seeds;
  };
  const Case cases[] = {{"int4 asym g32 student-t", 4, Scheme::kAsym, 32, Kind::kStudentT, 4},
                        {"int3 asym g64 laplace", 3, Scheme::kAsym, 64, Kind::kLaplace, 8},
                        {"int8 sym per-channel laplace", 8, Scheme::kSym, -1, Kind::kLaplace, 8},
                        {"int4 asym g32 zeros", 4, Scheme::kAsym, 32, Kind::kZeros, 1}};
  const int64_t rows = 512, cols = 4096;
  std::vector<float> w(rows * cols);
  int ended_in[4] = {};
  for (const Case& c : cases) {
    QuantConfig cfg;
    cfg.bits = c.bits;
    cfg.scheme = c.scheme;
    cfg.group_size = c.group_size;
    const RowPass pass = RowPass::For(cfg, kernels, cols, ElemType::kF32, ElemType::kF32);
    for (int seed = 0; seed < c.seeds; ++seed) {
      std::mt19937 rng(seed);
      std::student_t_distribution<float> t(4.0f);
      std::exponential_distribution<float> e(1.0f);
      for (float& x : w) {
        switch (c.kind) {
          case Kind::kStudentT:
            x = 0.02f * t(rng);
            break;
          case Kind::kLaplace:
            x = (rng() % 2 ? 0.02f : -0.02f) * e(rng);
            break;
          case Kind::kZeros:
            x = 0.0f;
            break;
        }
      }
      FirstBad bad;
      ClipSearchTrace trace;
      auto got = SearchClipRatio(pass, reinterpret_cast<const uint8_t*>(w.data()), rows, **engine,
                                 nullptr, bad, &trace);
      ASSERT_THAT(got, IsOk());
      EXPECT_EQ(*got, ExactChoice(kernels, pass, w.data(), rows)) << c.name << " seed " << seed;
      ASSERT_GE(trace.passes, 1);
      ASSERT_LE(trace.passes, 3);
      if (c.kind == Kind::kStudentT) {
        EXPECT_EQ(trace.passes, 1) << c.name << " seed " << seed;
      }
      if (trace.passes > 1) {
        EXPECT_GT(trace.rough_contenders, 1);
      }
      ++ended_in[trace.passes];
    }
  }
  EXPECT_GT(ended_in[1], 0);
  EXPECT_GT(ended_in[2], 0);
  EXPECT_GT(ended_in[3], 0);
}

}  // namespace
}  // namespace rtnq::internal
