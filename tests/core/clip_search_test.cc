// The MSE clip search's ranking: the fast losses (squares briefly summed in float32) must always
// lead to the ratio the exact losses choose, falling back to the exact losses when unsure.
#include "core/clip_search.h"

#include <cmath>
#include <limits>
#include <random>

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

}  // namespace
}  // namespace rtnq::internal
