#include "core/tensor_stream.h"

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

constexpr int64_t kRows = 64, kCols = 96;

class TensorStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::Create({.threads = 2, .kernels = ""});
    ASSERT_THAT(e, IsOk());
    engine_ = std::move(*e);
    std::mt19937 rng(11);
    std::normal_distribution<float> d;
    bf16_.resize(kRows * kCols);
    for (auto& v : bf16_) v = FloatToBf16(d(rng));
  }
  absl::Span<const uint8_t> Bytes() const {
    return {reinterpret_cast<const uint8_t*>(bf16_.data()), bf16_.size() * 2};
  }
  absl::StatusOr<TensorStreamPlan> Plan(const QuantConfig& c, const StreamOutputs& o,
                                        std::vector<int64_t> shape = {kRows, kCols}) const {
    return PlanTensorStream("m.layers.0.q_proj.weight", ElemType::kBF16, shape, c, {}, o);
  }
  // The whole tensor quantized at once and laid out: what every chunking must reproduce.
  std::vector<PackedTensor> Whole(const TensorStreamPlan& p) const {
    const TensorInput in{p.name, p.dtype, p.shape, Bytes()};
    auto q = QuantizeTensor(in, p.config, p.options, *engine_);
    EXPECT_THAT(q, IsOk());
    auto out = LayOutQuantized(*q, p.outputs, *engine_);
    EXPECT_THAT(out, IsOk());
    return *std::move(out);
  }
  std::unique_ptr<Engine> engine_;
  std::vector<uint16_t> bf16_;
};

StreamOutputs Form(StreamForm f, OutputLayout layout = OutputLayout::kFake) {
  StreamOutputs o;
  o.form = f;
  o.layout.layout = layout;
  return o;
}

TEST_F(TensorStreamTest, AnyChunkingGivesTheWholeTensorsOutputsInEveryForm) {
  QuantConfig sym;
  sym.scheme = Scheme::kSym;
  const std::vector<std::pair<QuantConfig, StreamOutputs>> cases = {
      {QuantConfig{}, Form(StreamForm::kFake)},
      {QuantConfig{}, Form(StreamForm::kCodes)},
      {sym, Form(StreamForm::kCodes)},
      {QuantConfig{}, Form(StreamForm::kPacked, OutputLayout::kInc)},
      {sym, Form(StreamForm::kPacked, OutputLayout::kGptq)},
      {QuantConfig{}, Form(StreamForm::kPacked, OutputLayout::kCompressedTensors)},
      {QuantConfig{}, Form(StreamForm::kPacked, OutputLayout::kAwq)},
  };
  const int64_t row_bytes = kCols * 2;
  // Pieces smaller than a row, exactly a row, across row ends, many rows, and the whole tensor.
  const std::vector<int64_t> piece_sizes = {
      1, 7, row_bytes, row_bytes + 5, 3 * row_bytes - 1, kRows * row_bytes};
  for (const auto& c : cases) {
    const QuantConfig& config = c.first;
    const StreamOutputs& outputs = c.second;
    auto plan = Plan(config, outputs);
    ASSERT_THAT(plan, IsOk());
    ASSERT_EQ(plan->mode, StreamMode::kRows);
    EXPECT_EQ(plan->step_bytes, row_bytes);
    const std::vector<PackedTensor> whole = Whole(*plan);
    const bool packed = outputs.form == StreamForm::kPacked;
    for (int64_t piece : piece_sizes) {
      SCOPED_TRACE(::testing::Message() << ConfigSummary(config) << " form "
                                        << static_cast<int>(outputs.form) << " piece " << piece);
      auto stream = TensorStream::Start(*plan, *engine_);
      ASSERT_THAT(stream, IsOk());
      // Streamed outputs (unpacked forms) land at their rows' offsets.
      std::vector<PackedTensor> got;
      for (const TensorSpec& s : StreamedOutputSpecs(*plan)) {
        int64_t n = ElemSize(s.dtype);
        for (int64_t d : s.shape) n *= d;
        got.push_back({s.name, s.dtype, s.shape, std::vector<uint8_t>(n)});
      }
      auto place = [&](RowBlockOutput& out) {
        ASSERT_FALSE(packed) << "a packed form hands nothing out before the end";
        auto put = [&](size_t i, const void* p, size_t size, int64_t per_row) {
          std::memcpy(got[i].data.data() + out.first_row * per_row, p, size);
        };
        if (outputs.form == StreamForm::kFake) {
          put(0, out.fake.data(), out.fake.size(), row_bytes);
          return;
        }
        const int64_t g = plan->tensor.scale_grid.cols;
        put(0, out.codes.data(), out.codes.size(), kCols);
        put(1, out.scales.data(), out.scales.size() * 4, g * 4);
        if (!out.zeros.empty()) put(2, out.zeros.data(), out.zeros.size() * 4, g * 4);
      };
      absl::Span<const uint8_t> rest = Bytes();
      while (!rest.empty()) {
        const size_t n = std::min<size_t>(piece, rest.size());
        ASSERT_THAT((*stream)->Add(rest.subspan(0, n), place), IsOk());
        EXPECT_LT((*stream)->carried_bytes(), row_bytes);
        rest.remove_prefix(n);
      }
      auto result = (*stream)->Finish();
      ASSERT_THAT(result, IsOk());
      if (packed) got = std::move(result->packed);
      ASSERT_EQ(got.size(), whole.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].name, whole[i].name);
        EXPECT_EQ(got[i].shape, whole[i].shape);
        EXPECT_EQ(got[i].data, whole[i].data) << got[i].name;
      }
    }
  }
}

TEST_F(TensorStreamTest, PlanSaysWhatEachModeHolds) {
  // Row streaming, unpacked: one row in, one row's outputs out.
  auto codes = Plan(QuantConfig{}, Form(StreamForm::kCodes));
  ASSERT_THAT(codes, IsOk());
  // g32 asym: a code byte per element plus a f32 scale and an i32 zero point per group.
  EXPECT_EQ(codes->row_output_bytes, kCols + (kCols / 32) * 8);
  EXPECT_EQ(codes->output_bytes, kRows * codes->row_output_bytes);
  EXPECT_EQ(codes->kept_bytes, 0);
  // Packed: the codes kept to the end plus the packed outputs.
  auto inc = Plan(QuantConfig{}, Form(StreamForm::kPacked, OutputLayout::kInc));
  ASSERT_THAT(inc, IsOk());
  EXPECT_EQ(inc->row_output_bytes, 0);
  EXPECT_EQ(inc->kept_bytes, codes->output_bytes + inc->output_bytes);
  // Metrics only: nothing comes out.
  StreamOutputs metrics = Form(StreamForm::kCodes);
  metrics.metrics_only = true;
  auto m = Plan(QuantConfig{}, metrics);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->output_bytes, 0);
  EXPECT_FALSE(m->options.codes);
  EXPECT_FALSE(m->options.fake_quant);
  // Whole tensors: group_dim 0 and MSE search.
  QuantConfig gd0;
  gd0.group_dim = 0;
  auto whole = Plan(gd0, Form(StreamForm::kFake));
  ASSERT_THAT(whole, IsOk());
  EXPECT_EQ(whole->mode, StreamMode::kWhole);
  EXPECT_EQ(whole->step_bytes, kRows * kCols * 2);
  // Passed through: a 1-D tensor.
  auto bias = Plan(QuantConfig{}, Form(StreamForm::kCodes), {kCols});
  ASSERT_THAT(bias, IsOk());
  EXPECT_EQ(bias->mode, StreamMode::kPassThrough);
  EXPECT_EQ(bias->output_bytes, kCols * 2);
  EXPECT_EQ(StreamedOutputSpecs(*bias).size(), 1u);
  EXPECT_THAT(TensorStream::Start(*bias, *engine_),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(TensorStreamTest, LayoutRulesAreCheckedFromTheHeader) {
  QuantConfig g7;
  g7.group_size = 7;  // 96 is not a multiple: GPTQ loaders refuse it
  EXPECT_THAT(Plan(g7, Form(StreamForm::kPacked, OutputLayout::kGptq)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("q_proj")));
  QuantConfig b3;
  b3.bits = 3;
  EXPECT_THAT(Plan(b3, Form(StreamForm::kPacked, OutputLayout::kAwq)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AWQ")));
  QuantConfig bad;
  bad.bits = 9;
  EXPECT_THAT(Plan(bad, Form(StreamForm::kFake)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bits")));
}

TEST_F(TensorStreamTest, StackedExpertsNeedTheirLayoutAndAreProcessedWhole) {
  const std::vector<int64_t> shape{4, 32, 64};
  const std::string name = "model.layers.0.mlp.experts.down_proj";
  EXPECT_THAT(PlanTensorStream(name, ElemType::kBF16, shape, {}, {}, Form(StreamForm::kFake)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expert_layout")));
  auto p = PlanTensorStream(name, ElemType::kBF16, shape, {}, {},
                            Form(StreamForm::kPacked, OutputLayout::kGptq), ExpertLayout{});
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->mode, StreamMode::kWhole);
  EXPECT_EQ(p->experts.size(), 4u);
  EXPECT_GT(p->output_bytes, 0);
}

TEST_F(TensorStreamTest, BytesPastTheEndAndMissingBytesAreErrors) {
  auto plan = Plan(QuantConfig{}, Form(StreamForm::kFake));
  ASSERT_THAT(plan, IsOk());
  auto stream = TensorStream::Start(*plan, *engine_);
  ASSERT_THAT(stream, IsOk());
  auto ignore = [](RowBlockOutput&) {};
  ASSERT_THAT((*stream)->Add(Bytes().subspan(0, 5), ignore), IsOk());
  EXPECT_EQ((*stream)->carried_bytes(), 5);
  EXPECT_THAT((*stream)->Finish(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("5 bytes of a partial row")));
  auto again = TensorStream::Start(*plan, *engine_);
  ASSERT_THAT(again, IsOk());
  ASSERT_THAT((*again)->Add(Bytes(), ignore), IsOk());
  EXPECT_THAT((*again)->Add(Bytes().subspan(0, 2 * kCols * 2), ignore),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceed")));
}

}  // namespace
}  // namespace rtnq
