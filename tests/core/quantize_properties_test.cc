// Properties of QuantizeTensor checked against independent computations: the MSE search against
// a brute-force search, double quant against quantizing the scale matrix by hand, 16-bit inputs
// against their float32 upcast, thread-count independence, and codes -> dequantize == fake.
#include <cmath>
#include <cstring>
#include <random>

#include "core/dtype.h"
#include "core/quantize.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;

std::vector<float> HeavyTailed(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(3.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = 0.02f * t(rng);
  return v;
}

TensorInput F32Input(const std::string& name, std::vector<int64_t> shape,
                     const std::vector<float>& v) {
  return TensorInput{name,
                     ElemType::kF32,
                     std::move(shape),
                     {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}};
}

std::vector<float> AsFloats(const std::vector<uint8_t>& bytes) {
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::unique_ptr<Engine> MakeEngine(int threads, const std::string& kernels = "") {
  auto e = Engine::Create({.threads = threads, .kernels = kernels});
  EXPECT_THAT(e, IsOk());
  return std::move(*e);
}

QuantizedTensor MustQuantize(const TensorInput& in, const QuantConfig& cfg, const Engine& engine,
                             bool codes = true) {
  QuantizeOptions opts;
  opts.codes = codes;
  auto q = QuantizeTensor(in, cfg, opts, engine);
  EXPECT_THAT(q, IsOk());
  return q.ok() ? *std::move(q) : QuantizedTensor{};
}

double Loss(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i] - b[i]);
    s += d * d;
  }
  return s / static_cast<double>(a.size());
}

std::vector<QuantConfig> SearchConfigs() {
  std::vector<QuantConfig> out;
  QuantConfig c;
  c.enable_mse_search = true;
  out.push_back(c);  // int4 asym g32
  c.scheme = Scheme::kSym;
  c.group_size = 128;
  out.push_back(c);
  c.dtype = QuantDtype::kNf4;
  c.group_size = 64;
  out.push_back(c);
  c = QuantConfig{};
  c.enable_mse_search = true;
  c.bits = 3;
  c.group_dim = 0;
  c.group_size = 16;
  out.push_back(c);
  return out;
}

TEST(MseSearch, PicksTheRatioABruteForceSearchPicks) {
  auto engine = MakeEngine(2);
  const std::vector<float> w = HeavyTailed(48 * 200, 11);
  const TensorInput in = F32Input("w", {48, 200}, w);
  for (const QuantConfig& cfg : SearchConfigs()) {
    // Brute force: quantize the whole tensor at each of the 40 ratios, keep the first minimum.
    QuantConfig fixed = cfg;
    fixed.enable_mse_search = false;
    double best_loss = INFINITY;
    float best_ratio = 0;
    for (int i = 0; i < 40; ++i) {
      fixed.quantile = static_cast<float>(1.0 - i / 200.0);
      const double loss = Loss(w, AsFloats(MustQuantize(in, fixed, *engine, false).fake));
      if (loss < best_loss) {
        best_loss = loss;
        best_ratio = static_cast<float>(fixed.quantile);
      }
    }
    QuantizedTensor searched = MustQuantize(in, cfg, *engine);
    EXPECT_EQ(searched.metrics.clip_ratio, best_ratio) << ConfigSummary(cfg);
    fixed.quantile = best_ratio;
    EXPECT_EQ(searched.fake, MustQuantize(in, fixed, *engine).fake) << ConfigSummary(cfg);
    // Metrics sum squares briefly in float32 (relative ~1e-6, see ComputeRowError).
    EXPECT_NEAR(searched.metrics.mse, best_loss, best_loss * 4e-6);
  }
}

TEST(MseSearch, ClipsWhenAnOutlierDominates) {
  auto engine = MakeEngine(1);
  std::vector<float> w(64);
  for (int i = 0; i < 64; ++i) w[i] = std::sin(0.37f * i);
  w[5] = 1.3f;  // mild outlier: clipping it trades a little error there for finer steps elsewhere
  QuantConfig cfg;
  cfg.group_size = -1;
  cfg.bits = 3;
  cfg.enable_mse_search = true;
  QuantizedTensor q = MustQuantize(F32Input("w", {1, 64}, w), cfg, *engine);
  EXPECT_LT(q.metrics.clip_ratio, 1.0);
  EXPECT_GE(q.metrics.clip_ratio, 0.805 - 1e-6);
}

TEST(DoubleQuant, EqualsQuantizingTheScaleRowByHand) {
  auto engine = MakeEngine(1);
  const std::vector<float> w = HeavyTailed(16 * 96, 3);
  const TensorInput in = F32Input("w", {16, 96}, w);
  for (Scheme dq_scheme : {Scheme::kSym, Scheme::kAsym}) {
    QuantConfig cfg;  // int4 asym g32: 3 groups per row, 48 scales
    cfg.double_quant_dtype = QuantDtype::kInt;
    cfg.double_quant_bits = 6;
    cfg.double_quant_group_size = 20;  // 48 scales -> groups of 20, 20, 8 (a tail group)
    cfg.double_quant_scheme = dq_scheme;
    QuantConfig plain = cfg;
    plain.double_quant_dtype = QuantDtype::kFp32;
    QuantizedTensor base = MustQuantize(in, plain, *engine);
    QuantizedTensor dq = MustQuantize(in, cfg, *engine);
    EXPECT_EQ(dq.codes, base.codes);
    EXPECT_EQ(dq.zeros, base.zeros);

    // The scale matrix as one row, quantized sym (centred first for asym).
    std::vector<float> s = base.scales;
    float mean = 0;
    if (dq_scheme == Scheme::kAsym) {
      double sum = 0;
      for (float v : s) sum += v;
      mean = static_cast<float>(sum / s.size());
      for (float& v : s) v -= mean;
    }
    QuantConfig scfg;
    scfg.bits = 6;
    scfg.scheme = Scheme::kSym;
    scfg.group_size = 20;
    QuantizeOptions opts;
    opts.quantize_1d = true;
    auto sq = QuantizeTensor(F32Input("scales", {static_cast<int64_t>(s.size())}, s), scfg, opts,
                             *engine);
    ASSERT_THAT(sq, IsOk());
    std::vector<float> expect_scales = AsFloats(sq->fake);
    if (dq_scheme == Scheme::kAsym) {
      for (float& v : expect_scales) v += mean;
    }
    EXPECT_EQ(dq.scales, expect_scales);
    const std::vector<float> fake = AsFloats(dq.fake);
    for (int64_t r = 0; r < 16; ++r) {
      for (int64_t c = 0; c < 96; ++c) {
        const int64_t g = r * 3 + c / 32;
        const float q = static_cast<float>(dq.codes[r * 96 + c]);
        ASSERT_EQ(fake[r * 96 + c], (q - static_cast<float>(dq.zeros[g])) * expect_scales[g]);
      }
    }
  }
}

TEST(DoubleQuant, PresetsRun) {
  auto engine = MakeEngine(2);
  const std::vector<float> w = HeavyTailed(64 * 512, 5);
  for (const char* preset : {"BNB_NF4", "GGML_TYPE_Q4_K"}) {
    QuantConfig cfg;
    auto patch = PresetPatch(preset);
    ASSERT_THAT(patch, IsOk());
    patch->ApplyTo(cfg);
    QuantizedTensor q = MustQuantize(F32Input("w", {64, 512}, w), cfg, *engine);
    EXPECT_TRUE(q.quantized);
    EXPECT_GT(q.metrics.snr_db, 10.0) << preset;
  }
}

TEST(HalfInputs, QuantizeTheirExactFloat32UpcastAndRoundBack) {
  auto engine = MakeEngine(2);
  const std::vector<float> w = HeavyTailed(24 * 70, 9);
  for (ElemType t : {ElemType::kBF16, ElemType::kF16}) {
    std::vector<uint16_t> h(w.size());
    std::vector<float> up(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      h[i] = t == ElemType::kBF16 ? FloatToBf16(w[i]) : FloatToHalf(w[i]);
      up[i] = t == ElemType::kBF16 ? Bf16ToFloat(h[i]) : HalfToFloat(h[i]);
    }
    const TensorInput in{
        "w", t, {24, 70}, {reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2}};
    for (int gd : {1, 0}) {
      QuantConfig cfg;
      cfg.group_dim = gd;
      cfg.group_size = 16;
      QuantizedTensor q16 = MustQuantize(in, cfg, *engine);
      QuantizedTensor q32 = MustQuantize(F32Input("w", {24, 70}, up), cfg, *engine);
      EXPECT_EQ(q16.codes, q32.codes);
      EXPECT_EQ(q16.scales, q32.scales);
      ASSERT_EQ(q16.fake.size(), w.size() * 2);
      const std::vector<float> f32 = AsFloats(q32.fake);
      for (size_t i = 0; i < w.size(); ++i) {
        uint16_t got;
        std::memcpy(&got, q16.fake.data() + 2 * i, 2);
        ASSERT_EQ(got, t == ElemType::kBF16 ? FloatToBf16(f32[i]) : FloatToHalf(f32[i])) << i;
      }
    }
  }
}

std::vector<QuantConfig> SweepConfigs() {
  std::vector<QuantConfig> out;
  for (int bits : {2, 3, 4, 8}) {
    for (Scheme s : {Scheme::kSym, Scheme::kAsym}) {
      for (int64_t gs : {int64_t{-1}, int64_t{7}, int64_t{32}}) {
        for (int gd : {1, 0}) {
          QuantConfig c;
          c.bits = bits;
          c.scheme = s;
          c.group_size = gs;
          c.group_dim = gd;
          out.push_back(c);
        }
      }
    }
  }
  for (QuantDtype d : {QuantDtype::kNf4, QuantDtype::kFp4, QuantDtype::kFp4E2M1}) {
    QuantConfig c;
    c.dtype = d;
    c.group_size = 64;
    out.push_back(c);
  }
  QuantConfig fr;
  fr.scheme = Scheme::kSym;
  fr.enable_full_range = true;
  out.push_back(fr);
  QuantConfig mse;
  mse.enable_mse_search = true;
  out.push_back(mse);
  QuantConfig dq;
  PresetPatch("GGML_TYPE_Q4_K")->ApplyTo(dq);
  out.push_back(dq);
  dq.group_dim = 0;
  out.push_back(dq);
  return out;
}

TEST(Determinism, OneThreadAndManyThreadsGiveIdenticalBytes) {
  auto one = MakeEngine(1);
  auto many = MakeEngine(4);
  const std::vector<float> w = HeavyTailed(300 * 257, 21);  // many blocks, odd width
  const TensorInput in = F32Input("w", {300, 257}, w);
  for (const QuantConfig& cfg : SweepConfigs()) {
    QuantizedTensor a = MustQuantize(in, cfg, *one);
    QuantizedTensor b = MustQuantize(in, cfg, *many);
    EXPECT_EQ(a.fake, b.fake) << ConfigSummary(cfg);
    EXPECT_EQ(a.codes, b.codes) << ConfigSummary(cfg);
    EXPECT_EQ(a.scales, b.scales) << ConfigSummary(cfg);
    EXPECT_EQ(a.zeros, b.zeros) << ConfigSummary(cfg);
    EXPECT_EQ(a.metrics.mse, b.metrics.mse) << ConfigSummary(cfg);
    EXPECT_EQ(a.metrics.clip_ratio, b.metrics.clip_ratio) << ConfigSummary(cfg);
  }
}

TEST(Determinism, ReferenceKernelsAndBestKernelsAgree) {
  auto ref = MakeEngine(2, "reference");
  auto best = MakeEngine(2);
  const std::vector<float> w = HeavyTailed(64 * 300, 33);
  const TensorInput in = F32Input("w", {64, 300}, w);
  for (const QuantConfig& cfg : SweepConfigs()) {
    QuantizedTensor a = MustQuantize(in, cfg, *ref);
    QuantizedTensor b = MustQuantize(in, cfg, *best);
    EXPECT_EQ(a.fake, b.fake) << ConfigSummary(cfg) << " " << best->kernels().name;
    EXPECT_EQ(a.codes, b.codes) << ConfigSummary(cfg);
    EXPECT_EQ(a.scales, b.scales) << ConfigSummary(cfg);
    EXPECT_EQ(a.metrics.clip_ratio, b.metrics.clip_ratio) << ConfigSummary(cfg);
  }
}

TEST(Dequantize, CodesAndScalesReproduceTheFakeValuesExactly) {
  auto engine = MakeEngine(2);
  const std::vector<float> w = HeavyTailed(40 * 99, 17);
  const TensorInput in = F32Input("w", {40, 99}, w);
  for (const QuantConfig& cfg : SweepConfigs()) {
    QuantizedTensor q = MustQuantize(in, cfg, *engine);
    auto deq = DequantizeCodes(q, *engine);
    ASSERT_THAT(deq, IsOk());
    EXPECT_EQ(*deq, AsFloats(q.fake)) << ConfigSummary(cfg);
  }
}

// Metrics against double sums, for ordinary weights and for weights whose squares overflow
// (1e25) or underflow (1e-25) float32.
class Metrics : public ::testing::TestWithParam<float> {};

TEST_P(Metrics, MatchAnIndependentComputation) {
  auto engine = MakeEngine(2);
  std::vector<float> w = HeavyTailed(33 * 65, 1);
  for (float& x : w) x *= GetParam();
  QuantizedTensor q = MustQuantize(F32Input("w", {33, 65}, w), QuantConfig{}, *engine);
  const std::vector<float> f = AsFloats(q.fake);
  double sse = 0, ss = 0, mx = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double d = static_cast<double>(w[i]) - f[i];
    sse += d * d;
    ss += static_cast<double>(w[i]) * w[i];
    mx = std::max(mx, std::fabs(d));
  }
  EXPECT_EQ(q.metrics.elements, 33 * 65);
  EXPECT_EQ(q.metrics.groups, 33 * 3);
  // Squares are summed briefly in float32 (ComputeRowError): relative ~1e-6 in each sum.
  EXPECT_NEAR(q.metrics.mse, sse / w.size(), 4e-6 * sse / w.size());
  EXPECT_NEAR(q.metrics.snr_db, 10 * std::log10(ss / sse), 1e-4);
  EXPECT_FLOAT_EQ(q.metrics.max_abs_error, mx);
}

INSTANTIATE_TEST_SUITE_P(Magnitudes, Metrics, ::testing::Values(1.0f, 1e25f, 1e-25f));

}  // namespace
}  // namespace rtnq
