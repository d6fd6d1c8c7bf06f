#include "core/row_stream.h"

#include <cstring>
#include <random>

#include "core/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

class RowStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::Create({.threads = 2, .kernels = ""});
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(*e);
    std::mt19937 rng(5);
    std::normal_distribution<float> d;
    w_.resize(37 * 45);
    for (auto& v : w_) v = d(rng);
    bf16_.resize(w_.size());
    for (size_t i = 0; i < w_.size(); ++i) bf16_[i] = FloatToBf16(w_[i]);
  }
  TensorInput Input(ElemType t) const {
    const uint8_t* p = t == ElemType::kF32 ? reinterpret_cast<const uint8_t*>(w_.data())
                                           : reinterpret_cast<const uint8_t*>(bf16_.data());
    return TensorInput{"layer.weight", t, {37, 45}, {p, w_.size() * ElemSize(t)}};
  }
  std::unique_ptr<Engine> engine_;
  std::vector<float> w_;
  std::vector<uint16_t> bf16_;
};

TEST_F(RowStreamTest, ChunkedRowsEqualWholeTensorQuantization) {
  QuantizeOptions opts;
  opts.codes = true;
  std::vector<QuantConfig> configs(4);
  configs[1].scheme = Scheme::kSym;
  configs[1].group_size = 7;
  configs[2].dtype = QuantDtype::kNf4;
  configs[3].bits = 8;
  configs[3].group_size = -1;
  for (ElemType t : {ElemType::kF32, ElemType::kBF16}) {
    for (const QuantConfig& cfg : configs) {
      const TensorInput in = Input(t);
      auto whole = QuantizeTensor(in, cfg, opts, *engine_);
      ASSERT_THAT(whole, IsOk());
      auto s = RowStreamQuantizer::Create(in, cfg, opts, *engine_);
      ASSERT_THAT(s, IsOk());
      std::vector<uint8_t> fake, codes;
      std::vector<float> scales;
      std::vector<int32_t> zeros;
      const int64_t rb = (*s)->row_bytes();
      for (int64_t row = 0, step = 1; row < 37; row += step, step = step % 5 + 1) {
        const int64_t n = std::min<int64_t>(step, 37 - row);
        RowBlockOutput out;
        ASSERT_THAT((*s)->AddRows(in.data.subspan(row * rb, n * rb), out), IsOk());
        EXPECT_EQ(out.first_row, row);
        fake.insert(fake.end(), out.fake.begin(), out.fake.end());
        codes.insert(codes.end(), out.codes.begin(), out.codes.end());
        scales.insert(scales.end(), out.scales.begin(), out.scales.end());
        zeros.insert(zeros.end(), out.zeros.begin(), out.zeros.end());
      }
      auto metrics = (*s)->Finish();
      ASSERT_THAT(metrics, IsOk());
      EXPECT_EQ(fake, whole->fake) << ConfigSummary(cfg);
      EXPECT_EQ(codes, whole->codes);
      EXPECT_EQ(scales, whole->scales);
      EXPECT_EQ(zeros, whole->zeros);
      EXPECT_EQ(metrics->mse, whole->metrics.mse);
      EXPECT_EQ(metrics->snr_db, whole->metrics.snr_db);
    }
  }
}

TEST_F(RowStreamTest, RejectsWhatCannotStream) {
  QuantConfig mse;
  mse.enable_mse_search = true;
  EXPECT_THAT(RowStreamQuantizer::Create(Input(ElemType::kF32), mse, {}, *engine_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("whole tensor")));
  QuantConfig gd0;
  gd0.group_dim = 0;
  EXPECT_FALSE(RowStreamQuantizer::CanStream(gd0, {}));
  TensorInput bias{"b", ElemType::kF32, {45}, {}};
  EXPECT_THAT(RowStreamQuantizer::Create(bias, {}, {}, *engine_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("passed through")));
}

TEST_F(RowStreamTest, BadChunksAreErrors) {
  const TensorInput in = Input(ElemType::kF32);
  auto s = RowStreamQuantizer::Create(in, {}, {}, *engine_);
  ASSERT_THAT(s, IsOk());
  RowBlockOutput out;
  EXPECT_THAT((*s)->AddRows(in.data.subspan(0, 10), out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("whole number of rows")));
  EXPECT_THAT((*s)->Finish(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("0 of 37 rows")));
  ASSERT_THAT((*s)->AddRows(in.data, out), IsOk());
  EXPECT_THAT((*s)->AddRows(in.data.subspan(0, (*s)->row_bytes()), out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceed its 37 rows")));

  std::vector<float> nan_rows(w_.begin(), w_.begin() + 2 * 45);
  nan_rows[45 + 3] = NAN;
  auto t = RowStreamQuantizer::Create(in, {}, {}, *engine_);
  ASSERT_THAT(t, IsOk());
  ASSERT_THAT((*t)->AddRows(in.data.subspan(0, 4 * 45 * 4), out), IsOk());
  EXPECT_THAT((*t)->AddRows({reinterpret_cast<const uint8_t*>(nan_rows.data()), 2 * 45 * 4}, out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("element [5, 3]")));
}

}  // namespace
}  // namespace rtnq
