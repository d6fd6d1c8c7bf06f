// ColumnSquaredErrors: per-column sums equal a plain double loop over the elements, all-ones
// weights give the unweighted sums bit for bit, thread counts do not matter, and the total agrees
// with the quantizer's own MSE.
#include "core/column_errors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/io/safetensors_header.h"
#include "core/tensor_text.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<uint8_t> Encode(const std::vector<float>& v, ElemType t) {
  std::vector<uint8_t> out(v.size() * ElemSize(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == ElemType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = t == ElemType::kBF16 ? FloatToBf16(v[i]) : FloatToHalf(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

float Decode(const std::vector<uint8_t>& b, ElemType t, size_t i) {
  if (t == ElemType::kF32) {
    float f;
    std::memcpy(&f, b.data() + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, b.data() + 2 * i, 2);
  return t == ElemType::kBF16 ? Bf16ToFloat(h) : HalfToFloat(h);
}

std::vector<float> Random(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

class ColumnErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    one_ = *Engine::Create({.threads = 1});
    many_ = *Engine::Create({.threads = 4});
  }
  std::unique_ptr<Engine> one_, many_;
};

TEST_F(ColumnErrorsTest, EqualsPlainLoopForDtypesShapesAndSlices) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t slices;
  };
  const std::vector<Case> cases = {{{1, 1}, 1},      {{3, 31}, 1},    {{33, 257}, 1},
                                   {{5, 513}, 1},    {{4, 3, 33}, 4}, {{4, 3, 33}, 2},
                                   {{2, 2, 300}, 1}, {{7}, 1},        {{0, 5}, 1}};
  uint32_t seed = 1;
  for (ElemType t : {ElemType::kF32, ElemType::kBF16, ElemType::kF16}) {
    for (const Case& c : cases) {
      int64_t elements = 1;
      for (int64_t d : c.shape) elements *= d;
      const std::vector<uint8_t> x = Encode(Random(elements, seed++, -2, 2), t);
      const std::vector<uint8_t> q = Encode(Random(elements, seed++, -2, 2), t);
      const std::vector<uint8_t> w = Encode(Random(elements, seed++, 0, 3), ElemType::kF32);
      const TensorInput in{"t", t, c.shape, x};
      const TensorInput weights{"w", ElemType::kF32, c.shape, w};
      const int64_t n = c.shape.back(), rows = n == 0 ? 0 : elements / n;
      std::vector<double> want(c.slices * n, 0.0), want_w(c.slices * n, 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t k = r / (rows / c.slices);
        for (int64_t j = 0; j < n; ++j) {
          const size_t i = r * n + j;
          const double d = double(Decode(x, t, i)) - double(Decode(q, t, i));
          want[k * n + j] += d * d;
          want_w[k * n + j] += double(Decode(w, ElemType::kF32, i)) * (d * d);
        }
      }
      for (const Engine* e : {one_.get(), many_.get()}) {
        absl::StatusOr<std::vector<double>> got = ColumnSquaredErrors(in, q, {}, c.slices, *e);
        ASSERT_THAT(got, IsOk());
        EXPECT_EQ(*got, want) << ElemTypeName(t) << " " << ShapeString(c.shape);
        got = ColumnSquaredErrors(in, q, weights, c.slices, *e);
        ASSERT_THAT(got, IsOk());
        EXPECT_EQ(*got, want_w) << ElemTypeName(t) << " " << ShapeString(c.shape);
      }
    }
  }
}

TEST_F(ColumnErrorsTest, AllOnesWeightsEqualUnweightedBitForBit) {
  for (ElemType wt : {ElemType::kF32, ElemType::kBF16, ElemType::kF16}) {
    const std::vector<int64_t> shape = {65, 1031};
    const std::vector<uint8_t> x = Encode(Random(65 * 1031, 7, -1e3f, 1e3f), ElemType::kBF16);
    const std::vector<uint8_t> q = Encode(Random(65 * 1031, 8, -1e3f, 1e3f), ElemType::kBF16);
    const std::vector<uint8_t> ones = Encode(std::vector<float>(65 * 1031, 1.0f), wt);
    const TensorInput in{"t", ElemType::kBF16, shape, x};
    auto plain = ColumnSquaredErrors(in, q, {}, 1, *many_);
    auto weighted = ColumnSquaredErrors(in, q, TensorInput{"w", wt, shape, ones}, 1, *many_);
    ASSERT_THAT(plain, IsOk());
    ASSERT_THAT(weighted, IsOk());
    EXPECT_EQ(*plain, *weighted);
  }
}

TEST_F(ColumnErrorsTest, TotalAgreesWithTheQuantizerMse) {
  const std::vector<int64_t> shape = {96, 640};
  const std::vector<uint8_t> x = Encode(Random(96 * 640, 11, -1, 1), ElemType::kBF16);
  const TensorInput in{"model.layers.0.mlp.up_proj.weight", ElemType::kBF16, shape, x};
  QuantConfig cfg;
  cfg.group_size = 64;
  auto qt = QuantizeTensor(in, cfg, QuantizeOptions{}, *many_);
  ASSERT_THAT(qt, IsOk());
  auto cols = ColumnSquaredErrors(in, qt->fake, {}, 1, *many_);
  ASSERT_THAT(cols, IsOk());
  double total = 0;
  for (double c : *cols) total += c;
  EXPECT_NEAR(total / (96 * 640), qt->metrics.mse, qt->metrics.mse * 1e-6);
}

TEST_F(ColumnErrorsTest, BadInputsNameTheTensorAndTheRule) {
  const std::vector<uint8_t> x(4 * 6), short_q(4 * 5);
  const TensorInput in{"layer.weight", ElemType::kF32, {2, 3}, x};
  EXPECT_THAT(ColumnSquaredErrors(in, short_q, {}, 1, *one_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("fake-quantized output has 20 bytes")));
  EXPECT_THAT(ColumnSquaredErrors(in, x, {}, 4, *one_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4 slices do not divide")));
  EXPECT_THAT(ColumnSquaredErrors(in, x, {}, 0, *one_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layer.weight")));
  EXPECT_THAT(ColumnSquaredErrors(in, x, TensorInput{"w", ElemType::kF32, {3, 2}, x}, 1, *one_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weights of shape [3, 2]")));
  EXPECT_THAT(ColumnSquaredErrors(in, x, TensorInput{"w", ElemType::kI32, {2, 3}, x}, 1, *one_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("I32")));
  const TensorInput ints{"i", ElemType::kI32, {2, 3}, x};
  EXPECT_THAT(ColumnSquaredErrors(ints, x, {}, 1, *one_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not F32, F16 or BF16")));
  const TensorInput scalar{"s", ElemType::kF32, {}, absl::MakeConstSpan(x.data(), 4)};
  EXPECT_THAT(ColumnSquaredErrors(scalar, absl::MakeConstSpan(x.data(), 4), {}, 1, *one_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0-D")));
}

}  // namespace
}  // namespace rtnq
