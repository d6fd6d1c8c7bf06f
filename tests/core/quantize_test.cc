// Spec examples for QuantizeTensor, computed by hand from ../shared/spec/RTN.md.
#include "core/quantize.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// A float32 tensor whose bytes live as long as the fixture.
struct F32Tensor {
  std::vector<float> values;
  TensorInput input;
  F32Tensor(std::string name, std::vector<int64_t> shape, std::vector<float> v)
      : values(std::move(v)) {
    input.name = std::move(name);
    input.dtype = ElemType::kF32;
    input.shape = std::move(shape);
    input.data = {reinterpret_cast<const uint8_t*>(values.data()), values.size() * 4};
  }
};

std::vector<float> AsFloats(const std::vector<uint8_t>& bytes) {
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::vector<int> Codes(const QuantizedTensor& q) {
  std::vector<int> out;
  const bool asym = q.config.dtype == QuantDtype::kInt && q.config.scheme == Scheme::kAsym;
  for (uint8_t b : q.codes) out.push_back(asym ? b : static_cast<int8_t>(b));
  return out;
}

class QuantizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::Create({.threads = 1, .kernels = ""});
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(*e);
  }
  QuantizedTensor Run(const TensorInput& in, const QuantConfig& cfg) {
    QuantizeOptions opts;
    opts.codes = true;
    auto q = QuantizeTensor(in, cfg, opts, *engine_);
    EXPECT_THAT(q, IsOk());
    return q.ok() ? *std::move(q) : QuantizedTensor{};
  }
  static QuantConfig Int(int bits, Scheme scheme, int64_t gs) {
    QuantConfig c;
    c.bits = bits;
    c.scheme = scheme;
    c.group_size = gs;
    return c;
  }
  std::unique_ptr<Engine> engine_;
};

TEST_F(QuantizeTest, AsymTiesRoundHalfToEven) {
  // lo = 0, hi = 15: scale 1, zp 0, so codes are round(x) with ties to even.
  F32Tensor t("w", {1, 5}, {0.5f, 1.5f, 2.5f, 3.5f, 15.0f});
  QuantizedTensor q = Run(t.input, Int(4, Scheme::kAsym, -1));
  EXPECT_THAT(Codes(q), ElementsAre(0, 2, 2, 4, 15));
  EXPECT_THAT(q.scales, ElementsAre(1.0f));
  EXPECT_THAT(q.zeros, ElementsAre(0));
  EXPECT_THAT(AsFloats(q.fake), ElementsAre(0.0f, 2.0f, 2.0f, 4.0f, 15.0f));
}

TEST_F(QuantizeTest, AsymWithNegativeRange) {
  // lo = -1, hi = 2: scale = 3/15 = 0.2f, zp = round(1/0.2f) = 5; 0.5/0.2f is exactly 2.5 -> 2.
  F32Tensor t("w", {1, 4}, {-1.0f, 0.0f, 0.5f, 2.0f});
  QuantizedTensor q = Run(t.input, Int(4, Scheme::kAsym, 32));
  EXPECT_THAT(Codes(q), ElementsAre(0, 5, 7, 15));
  EXPECT_THAT(q.scales, ElementsAre(3.0f / 15.0f));
  EXPECT_THAT(q.zeros, ElementsAre(5));
  EXPECT_THAT(AsFloats(q.fake), ElementsAre(-1.0f, 0.0f, 2 * (3.0f / 15.0f), 2.0f));
}

TEST_F(QuantizeTest, SymTiesAndClamp) {
  // amax 7, maxq 7: scale 1; -3.5 -> -4, 2.5 -> 2, +-0.5 -> 0.
  F32Tensor t("w", {1, 5}, {7.0f, -3.5f, 2.5f, -0.5f, 0.5f});
  QuantizedTensor q = Run(t.input, Int(4, Scheme::kSym, -1));
  EXPECT_THAT(Codes(q), ElementsAre(7, -4, 2, 0, 0));
  EXPECT_THAT(q.scales, ElementsAre(1.0f));
  EXPECT_TRUE(q.zeros.empty());
  EXPECT_EQ(q.codes[1], 0xFC);  // two's complement byte
}

TEST_F(QuantizeTest, SymFullRangeFlipsOnlyOnStrictDominance) {
  QuantConfig cfg = Int(4, Scheme::kSym, -1);
  cfg.enable_full_range = true;
  {  // |max| 8 > |min| 4: scale -8/8 = -1, the max lands on -8.
    F32Tensor t("w", {1, 3}, {8.0f, -4.0f, 1.0f});
    QuantizedTensor q = Run(t.input, cfg);
    EXPECT_THAT(q.scales, ElementsAre(-1.0f));
    EXPECT_THAT(Codes(q), ElementsAre(-8, 4, -1));
    EXPECT_THAT(AsFloats(q.fake), ElementsAre(8.0f, -4.0f, 1.0f));
  }
  {  // |min| dominates: no flip.
    F32Tensor t("w", {1, 3}, {4.0f, -8.0f, 1.0f});
    QuantizedTensor q = Run(t.input, cfg);
    EXPECT_THAT(q.scales, ElementsAre(1.0f));
    EXPECT_THAT(Codes(q), ElementsAre(4, -8, 1));
  }
  {  // Equal magnitudes: no flip, so +8 clamps to 7.
    F32Tensor t("w", {1, 3}, {8.0f, -8.0f, 2.0f});
    QuantizedTensor q = Run(t.input, cfg);
    EXPECT_THAT(q.scales, ElementsAre(1.0f));
    EXPECT_THAT(Codes(q), ElementsAre(7, -8, 2));
    EXPECT_THAT(AsFloats(q.fake), ElementsAre(7.0f, -8.0f, 2.0f));
  }
}

TEST_F(QuantizeTest, EveryAsymBitWidthIsExactOnItsGrid) {
  for (int b = 1; b <= 8; ++b) {
    const int maxq = (1 << b) - 1;
    std::vector<float> v;
    for (int i = 0; i <= maxq; ++i) v.push_back(static_cast<float>(i));
    F32Tensor t("w", {1, static_cast<int64_t>(v.size())}, v);
    QuantizedTensor q = Run(t.input, Int(b, Scheme::kAsym, -1));
    std::vector<int> expect(v.begin(), v.end());
    EXPECT_THAT(Codes(q), ElementsAreArray(expect)) << "bits " << b;
    EXPECT_THAT(AsFloats(q.fake), ElementsAreArray(v)) << "bits " << b;
  }
}

TEST_F(QuantizeTest, EverySymBitWidthIsExactOnItsGrid) {
  for (int b = 2; b <= 8; ++b) {
    const int maxq = (1 << (b - 1)) - 1;
    std::vector<float> v;
    for (int i = -maxq; i <= maxq; ++i) v.push_back(static_cast<float>(i));
    F32Tensor t("w", {1, static_cast<int64_t>(v.size())}, v);
    QuantizedTensor q = Run(t.input, Int(b, Scheme::kSym, -1));
    std::vector<int> expect(v.begin(), v.end());
    EXPECT_THAT(Codes(q), ElementsAreArray(expect)) << "bits " << b;
    EXPECT_THAT(AsFloats(q.fake), ElementsAreArray(v)) << "bits " << b;
  }
}

TEST_F(QuantizeTest, OneBitSymMapsNegativesToZeroLikeTheReference) {
  F32Tensor t("w", {1, 4}, {1.0f, -1.0f, 0.6f, -0.3f});
  QuantizedTensor q = Run(t.input, Int(1, Scheme::kSym, -1));
  EXPECT_THAT(Codes(q), ElementsAre(1, 0, 1, 0));
  EXPECT_THAT(AsFloats(q.fake), ElementsAre(1.0f, 0.0f, 1.0f, 0.0f));
}

TEST_F(QuantizeTest, OneBitSymFullRangeIsRejected) {
  F32Tensor t("layer.weight", {1, 4}, {1.0f, -1.0f, 0.6f, -0.3f});
  QuantConfig cfg = Int(1, Scheme::kSym, -1);
  cfg.enable_full_range = true;
  EXPECT_THAT(QuantizeTensor(t.input, cfg, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("layer.weight"), HasSubstr("enable_full_range"))));
}

TEST_F(QuantizeTest, Nf4ValuesAndMidpointsGoDown) {
  QuantConfig cfg;
  cfg.dtype = QuantDtype::kNf4;
  cfg.group_size = -1;
  const float mid = static_cast<float>((0.0 + 0.07958029955625534) / 2.0);
  const float above = std::nextafter(mid, 1.0f);
  // absmax 1 -> scale 1/1 = 1, so x = g.
  F32Tensor t("w", {1, 5}, {1.0f, -1.0f, 0.0f, mid, above});
  QuantizedTensor q = Run(t.input, cfg);
  EXPECT_THAT(q.scales, ElementsAre(1.0f));
  EXPECT_THAT(Codes(q), ElementsAre(-1, 7, 0, 0, -8));
  EXPECT_THAT(AsFloats(q.fake),
              ElementsAre(1.0f, -1.0f, 0.0f, 0.0f, static_cast<float>(0.07958029955625534)));
}

TEST_F(QuantizeTest, Fp4BnbMidpointsGoDown) {
  QuantConfig cfg;
  cfg.dtype = QuantDtype::kFp4;
  cfg.group_size = -1;
  // absmax 12 -> scale 12/12 = 1; 1.03125 is the midpoint of 0.0625 and 2.
  F32Tensor t("w", {1, 6},
              {12.0f, -12.0f, 1.03125f, std::nextafter(1.03125f, 2.0f), -1.03125f, 0.0f});
  QuantizedTensor q = Run(t.input, cfg);
  EXPECT_THAT(Codes(q), ElementsAre(3, -5, 1, 6, -2, 0));
  EXPECT_THAT(AsFloats(q.fake), ElementsAre(12.0f, -12.0f, 0.0625f, 2.0f, -2.0f, 0.0f));
}

TEST_F(QuantizeTest, Fp4E2M1Table) {
  QuantConfig cfg;
  cfg.dtype = QuantDtype::kFp4E2M1;
  cfg.group_size = -1;
  // -2.5 is the midpoint of -3 and -2: it goes down to -3.
  F32Tensor t("w", {1, 5}, {6.0f, -6.0f, 1.25f, 1.2500001f, -2.5f});
  QuantizedTensor q = Run(t.input, cfg);
  EXPECT_THAT(Codes(q), ElementsAre(7, -1, 2, 3, -3));
  EXPECT_THAT(AsFloats(q.fake), ElementsAre(6.0f, -6.0f, 1.0f, 1.5f, -3.0f));
}

TEST_F(QuantizeTest, AllZeroGroups) {
  F32Tensor t("w", {1, 4}, {0.0f, 0.0f, 1.0f, -1.0f});
  {  // asym: lo/hi become -1/1: scale 2/15, zp round(1/(2/15)) = 7 (not 8 in float32).
    QuantizedTensor q = Run(t.input, Int(4, Scheme::kAsym, 2));
    EXPECT_EQ(q.scales[0], 2.0f / 15.0f);
    // The group [1, -1] has the same range: 1 / (2/15) = 7.4999995 rounds to 7, plus zp 7.
    EXPECT_THAT(q.zeros, ElementsAre(7, 7));
    EXPECT_THAT(Codes(q), ElementsAre(7, 7, 14, 0));
    EXPECT_THAT(AsFloats(q.fake)[0], 0.0f);
  }
  {  // sym: amax becomes 1.
    QuantizedTensor q = Run(t.input, Int(4, Scheme::kSym, 2));
    EXPECT_EQ(q.scales[0], 1.0f / 7.0f);
    EXPECT_THAT(Codes(q), ElementsAre(0, 0, 7, -7));
  }
  {  // nf4: scale 0, codes 0, zeros out.
    QuantConfig cfg;
    cfg.dtype = QuantDtype::kNf4;
    cfg.group_size = 2;
    QuantizedTensor q = Run(t.input, cfg);
    EXPECT_EQ(q.scales[0], 0.0f);
    EXPECT_THAT(Codes(q), ElementsAre(0, 0, -1, 7));
    EXPECT_THAT(AsFloats(q.fake), ElementsAre(0.0f, 0.0f, 1.0f, -1.0f));
  }
}

TEST_F(QuantizeTest, TailGroupAndOversizedGroup) {
  F32Tensor t("w", {2, 5}, {0, 15, 0, 30, 45, 0, 1, 0, 2, -3});
  QuantizedTensor q = Run(t.input, Int(4, Scheme::kAsym, 2));
  ASSERT_EQ(q.scale_rows(), 2);
  ASSERT_EQ(q.scale_cols(), 3);
  // Row 0 groups: [0,15] -> 1; [0,30] -> 2; tail [45] -> 3.
  EXPECT_THAT(std::vector<float>(q.scales.begin(), q.scales.begin() + 3),
              ElementsAre(1.0f, 2.0f, 3.0f));
  const std::vector<int> codes = Codes(q);
  EXPECT_THAT(std::vector<int>(codes.begin(), codes.begin() + 5), ElementsAre(0, 15, 0, 15, 15));
  // Row 1 tail [-3]: lo -3, hi 0 -> scale 0.2, zp 15, code 0.
  EXPECT_EQ(q.scales[5], 3.0f / 15.0f);
  EXPECT_EQ(q.zeros[5], 15);

  QuantizedTensor whole = Run(t.input, Int(4, Scheme::kAsym, 64));
  EXPECT_EQ(whole.group_size, 5);
  EXPECT_EQ(whole.scale_cols(), 1);
  QuantizedTensor per_channel = Run(t.input, Int(4, Scheme::kAsym, -1));
  EXPECT_EQ(per_channel.codes, whole.codes);
  EXPECT_EQ(per_channel.scales, whole.scales);
}

TEST_F(QuantizeTest, QuantileClips) {
  F32Tensor t("w", {1, 2}, {0.0f, 15.0f});
  QuantConfig cfg = Int(4, Scheme::kAsym, -1);
  cfg.quantile = 0.5;
  QuantizedTensor q = Run(t.input, cfg);
  EXPECT_THAT(q.scales, ElementsAre(0.5f));
  EXPECT_THAT(Codes(q), ElementsAre(0, 15));
  EXPECT_THAT(AsFloats(q.fake), ElementsAre(0.0f, 7.5f));
  EXPECT_EQ(q.metrics.clip_ratio, 0.5);
}

TEST_F(QuantizeTest, HugeOutlierFlattensTheRest) {
  F32Tensor t("w", {1, 4}, {1000.0f, 0.01f, -0.02f, 3.0f});
  QuantizedTensor q = Run(t.input, Int(4, Scheme::kSym, -1));
  EXPECT_THAT(Codes(q), ElementsAre(7, 0, 0, 0));
  EXPECT_GT(q.metrics.max_abs_error, 2.9);
}

TEST_F(QuantizeTest, GroupDimZeroEqualsTransposedQuantization) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  std::vector<float> w(6 * 5), wt(5 * 6);
  for (auto& v : w) v = dist(rng);
  for (int r = 0; r < 6; ++r)
    for (int c = 0; c < 5; ++c) wt[c * 6 + r] = w[r * 5 + c];
  F32Tensor a("w", {6, 5}, w), b("wt", {5, 6}, wt);
  QuantConfig cfg = Int(3, Scheme::kAsym, 4);
  cfg.group_dim = 0;
  QuantizedTensor q0 = Run(a.input, cfg);
  cfg.group_dim = 1;
  QuantizedTensor q1 = Run(b.input, cfg);
  ASSERT_EQ(q0.scale_rows(), 2);  // ceil(6 / 4) groups down each column
  ASSERT_EQ(q0.scale_cols(), 5);
  const auto f0 = AsFloats(q0.fake), f1 = AsFloats(q1.fake);
  for (int r = 0; r < 6; ++r) {
    for (int c = 0; c < 5; ++c) {
      EXPECT_EQ(f0[r * 5 + c], f1[c * 6 + r]);
      EXPECT_EQ(q0.codes[r * 5 + c], q1.codes[c * 6 + r]);
    }
  }
  for (int g = 0; g < 2; ++g) {
    for (int c = 0; c < 5; ++c) {
      EXPECT_EQ(q0.scales[g * 5 + c], q1.scales[c * 2 + g]);
      EXPECT_EQ(q0.zeros[g * 5 + c], q1.zeros[c * 2 + g]);
    }
  }
}

TEST_F(QuantizeTest, NdTensorsAreFlattenedAndOneDPassesThrough) {
  std::vector<float> v(2 * 3 * 4);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) - 7.0f;
  F32Tensor nd("conv.weight", {2, 3, 4}, v);
  QuantizedTensor q = Run(nd.input, Int(4, Scheme::kAsym, 32));
  EXPECT_EQ(q.rows, 2);
  EXPECT_EQ(q.cols, 12);
  EXPECT_EQ(q.shape, (std::vector<int64_t>{2, 3, 4}));

  F32Tensor bias("fc.bias", {4}, {1, 2, 3, 4});
  QuantizedTensor p = Run(bias.input, Int(4, Scheme::kAsym, 32));
  EXPECT_FALSE(p.quantized);
  EXPECT_THAT(p.skip_reason, HasSubstr("1-D"));
  EXPECT_THAT(AsFloats(p.fake), ElementsAre(1, 2, 3, 4));

  QuantizeOptions force;
  force.quantize_1d = true;
  auto forced = QuantizeTensor(bias.input, Int(4, Scheme::kAsym, 32), force, *engine_);
  ASSERT_THAT(forced, IsOk());
  EXPECT_TRUE(forced->quantized);
  EXPECT_EQ(forced->rows, 1);
}

TEST_F(QuantizeTest, Fp32ConfigLeavesTensorUnquantized) {
  F32Tensor t("w", {2, 2}, {1, 2, 3, 4});
  QuantConfig cfg;
  cfg.dtype = QuantDtype::kFp32;
  QuantizedTensor q = Run(t.input, cfg);
  EXPECT_FALSE(q.quantized);
  EXPECT_THAT(AsFloats(q.fake), ElementsAre(1, 2, 3, 4));
}

TEST_F(QuantizeTest, BadInputsNameTheTensor) {
  F32Tensor t("model.layers.0.q_proj.weight", {2, 3}, {1, 2, 3, 4, 5, 6});
  TensorInput short_input = t.input;
  short_input.data = short_input.data.subspan(0, 20);
  EXPECT_THAT(QuantizeTensor(short_input, {}, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("q_proj.weight"), HasSubstr("needs 24 bytes, got 20"))));
  TensorInput negative = t.input;
  negative.shape = {-2, -3};
  EXPECT_THAT(QuantizeTensor(negative, {}, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
  TensorInput overflow = t.input;
  overflow.shape = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_THAT(QuantizeTensor(overflow, {}, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overflows")));
  TensorInput empty = t.input;
  empty.shape = {0, 3};
  empty.data = {};
  EXPECT_THAT(QuantizeTensor(empty, {}, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no elements")));
  TensorInput ints = t.input;
  ints.dtype = ElemType::kI32;
  EXPECT_THAT(QuantizeTensor(ints, {}, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("I32 cannot be quantized")));
  QuantConfig bad;
  bad.group_size = 0;
  EXPECT_THAT(QuantizeTensor(t.input, bad, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("q_proj.weight"), HasSubstr("group_size"))));
}

TEST_F(QuantizeTest, NonFiniteIsAnErrorUnlessPassedThrough) {
  F32Tensor t("w", {2, 2}, {1, 2, std::numeric_limits<float>::quiet_NaN(), 4});
  EXPECT_THAT(QuantizeTensor(t.input, {}, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"w\""), HasSubstr("element [1, 0] is nan"))));
  QuantConfig gd0;
  gd0.group_dim = 0;
  gd0.enable_mse_search = true;
  EXPECT_THAT(QuantizeTensor(t.input, gd0, {}, *engine_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("element [1, 0]")));
  QuantizeOptions pass;
  pass.pass_nonfinite = true;
  auto q = QuantizeTensor(t.input, {}, pass, *engine_);
  ASSERT_THAT(q, IsOk());
  EXPECT_FALSE(q->quantized);
  EXPECT_EQ(q->fake.size(), 16u);
}

TEST_F(QuantizeTest, ScaleUnderflowIsRejected) {
  F32Tensor t("tiny", {1, 2}, {1e-45f, 0.0f});
  EXPECT_THAT(
      QuantizeTensor(t.input, Int(4, Scheme::kAsym, -1), {}, *engine_),
      StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("tiny"), HasSubstr("scale 0"))));
}

TEST_F(QuantizeTest, CancelledBeforeStart) {
  std::vector<float> v(64 * 64, 1.0f);
  F32Tensor t("w", {64, 64}, v);
  std::atomic<bool> cancel{true};
  QuantizeOptions opts;
  opts.cancel = &cancel;
  EXPECT_THAT(QuantizeTensor(t.input, {}, opts, *engine_), StatusIs(absl::StatusCode::kCancelled));
}

}  // namespace
}  // namespace rtnq
