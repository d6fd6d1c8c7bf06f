// PlanQuantizedOutputs must predict exactly what QuantizeTensor + PackInc / PackGptq produce, over
// a sweep of configs and awkward shapes: the CLI writes safetensors headers from the plan before
// any tensor is quantized.
#include "core/layout/output_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/quantize.h"
#include "core/tensor_text.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kName[] = "model.layers.0.mlp.up_proj.weight";

std::vector<uint8_t> RandomF32(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<uint8_t> bytes(n * 4);
  for (int64_t i = 0; i < n; ++i) {
    const float v = dist(rng);
    std::memcpy(bytes.data() + 4 * i, &v, 4);
  }
  return bytes;
}

// The specs of what the packers actually return.
absl::StatusOr<std::vector<TensorSpec>> Actual(const std::vector<int64_t>& shape,
                                               const QuantConfig& cfg, const OutputLayoutOptions& o,
                                               const Engine& engine) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const std::vector<uint8_t> data = RandomF32(n, static_cast<uint32_t>(n));
  TensorInput in{kName, ElemType::kF32, shape, data};
  QuantizeOptions qo;
  qo.fake_quant = o.layout == OutputLayout::kFake;
  qo.codes = !qo.fake_quant;
  absl::StatusOr<QuantizedTensor> q = QuantizeTensor(in, cfg, qo, engine);
  if (!q.ok()) return q.status();
  if (o.layout == OutputLayout::kFake) {
    return std::vector<TensorSpec>{{kName, ElemType::kF32, shape}};
  }
  absl::StatusOr<std::vector<PackedTensor>> packed;
  if (o.layout == OutputLayout::kInc) {
    packed = PackInc(*q, LayerName(kName), o.compression_dim);
  } else {
    GptqPackOptions po;
    po.format = GptqFormat::kV2;
    packed = PackGptq(*q, LayerName(kName), po);
  }
  if (!packed.ok()) return packed.status();
  std::vector<TensorSpec> specs;
  for (const PackedTensor& p : *packed) {
    EXPECT_EQ(p.data.size(), static_cast<size_t>([&] {
                int64_t e = ElemSize(p.dtype);
                for (int64_t d : p.shape) e *= d;
                return e;
              }()))
        << p.name;
    specs.push_back({p.name, p.dtype, p.shape});
  }
  return specs;
}

void ExpectSameSpecs(const std::vector<TensorSpec>& a, const std::vector<TensorSpec>& b,
                     const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name) << what;
    EXPECT_EQ(a[i].dtype, b[i].dtype) << what << " " << a[i].name;
    EXPECT_EQ(a[i].shape, b[i].shape) << what << " " << a[i].name;
  }
}

class OutputPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Engine>> e = Engine::Create({.threads = 1});
    ASSERT_THAT(e.status(), IsOk());
    engine_ = *std::move(e);
  }
  std::unique_ptr<Engine> engine_;
};

TEST_F(OutputPlanTest, IncAndFakeMatchThePackersOverManyConfigs) {
  const std::vector<std::vector<int64_t>> shapes = {{1, 1}, {3, 31}, {5, 33}, {8, 64}, {2, 3, 5}};
  int checked = 0;
  for (const auto& shape : shapes) {
    for (QuantDtype dt : {QuantDtype::kInt, QuantDtype::kNf4, QuantDtype::kFp4}) {
      for (int bits : {1, 2, 3, 4, 5, 8}) {
        if (dt != QuantDtype::kInt && bits != 4) continue;
        for (Scheme sc : {Scheme::kSym, Scheme::kAsym}) {
          for (int64_t gs : {-1, 1, 3, 32, 1000}) {
            for (int gd : {0, 1}) {
              for (int cd : {0, 1}) {
                for (bool dq : {false, true}) {
                  QuantConfig c;
                  c.dtype = dt;
                  c.bits = bits;
                  c.scheme = sc;
                  c.group_size = gs;
                  c.group_dim = gd;
                  if (dq) c.double_quant_dtype = QuantDtype::kInt;
                  if (!ValidateConfig(c).ok()) continue;
                  const std::string what = absl::StrCat(ConfigSummary(c), " gd", gd, " cd", cd,
                                                        " dq", dq, " ", ShapeString(shape));
                  for (OutputLayout l : {OutputLayout::kFake, OutputLayout::kInc}) {
                    OutputLayoutOptions o{l, cd};
                    absl::StatusOr<std::vector<TensorSpec>> want = Actual(shape, c, o, *engine_);
                    ASSERT_THAT(want.status(), IsOk()) << what;
                    absl::StatusOr<std::vector<TensorSpec>> got =
                        PlanQuantizedOutputs(kName, ElemType::kF32, shape, c, o);
                    ASSERT_THAT(got.status(), IsOk()) << what;
                    ExpectSameSpecs(*got, *want, what);
                    ++checked;
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST_F(OutputPlanTest, GptqMatchesPackGptqAndRefusesWhatItRefuses) {
  const std::vector<std::vector<int64_t>> shapes = {{32, 64}, {64, 256}, {16, 128}, {8, 96}};
  int ok = 0, refused = 0;
  for (const auto& shape : shapes) {
    for (int bits : {2, 3, 4, 8}) {
      for (Scheme sc : {Scheme::kSym, Scheme::kAsym}) {
        for (int64_t gs : {-1, 16, 32, 128}) {
          for (int gd : {0, 1}) {
            QuantConfig c;
            c.bits = bits;
            c.scheme = sc;
            c.group_size = gs;
            c.group_dim = gd;
            const std::string what =
                absl::StrCat(ConfigSummary(c), " gd", gd, " ", ShapeString(shape));
            OutputLayoutOptions o{OutputLayout::kGptq};
            absl::StatusOr<std::vector<TensorSpec>> got =
                PlanQuantizedOutputs(kName, ElemType::kBF16, shape, c, o);
            absl::StatusOr<std::vector<TensorSpec>> want = Actual(shape, c, o, *engine_);
            ASSERT_EQ(got.ok(), want.ok())
                << what << " plan: " << got.status() << " pack: " << want.status();
            if (!got.ok()) {
              ++refused;
              continue;
            }
            ExpectSameSpecs(*got, *want, what);
            ++ok;
          }
        }
      }
    }
  }
  EXPECT_GT(ok, 20);
  EXPECT_GT(refused, 20);
}

TEST(OutputPlanErrors, NameTheTensor) {
  QuantConfig c;
  EXPECT_THAT(PlanQuantizedOutputs("x.weight", ElemType::kF32, {8}, c, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"x.weight\": 1-D")));
  EXPECT_THAT(PlanQuantizedOutputs("x.weight", ElemType::kI32, {8, 8}, c, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype I32")));
  c.bits = 9;
  EXPECT_THAT(PlanQuantizedOutputs("x.weight", ElemType::kF32, {8, 8}, c, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bits")));
  EXPECT_EQ(LayerName("a.b.weight"), "a.b");
  EXPECT_EQ(LayerName("a.b.bias"), "a.b.bias");
}

}  // namespace
}  // namespace rtnq
