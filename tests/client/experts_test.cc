// MoE experts: quantizing a stacked [E, a, b] tensor equals, byte for byte, quantizing each
// expert's 2-D slice as its own tensor, for every output format, group_dim 0 and 1 and MSE
// search, in every expert layout; and RunQuantize on the synthetic MoE checkpoints (per-expert
// names, routers kept, the experts compressed, errors that name the tensor and leave nothing).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "client/checkpoint_util.h"
#include "client/local_backend.h"
#include "client/quantize_run.h"
#include "client/synth/synth_checkpoint.h"
#include "client/verify.h"
#include "core/engine.h"
#include "core/expert_layout.h"
#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/test_dir.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

namespace fs = std::filesystem;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

const ExpertLayout kLayouts[] = {{false, false}, {true, false}, {false, true}, {true, true}};

std::vector<uint8_t> RandomBytes(ElemType dtype, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> heavy(3.0f);  // heavy tails, as trained weights have
  std::vector<uint8_t> out(n * ElemSize(dtype));
  for (int64_t i = 0; i < n; ++i) {
    const float v = 0.02f * heavy(rng);
    if (dtype == ElemType::kF32) {
      std::memcpy(&out[4 * i], &v, 4);
    } else {
      const uint16_t h = FloatToBf16(v);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

struct FormatCase {
  std::string name;
  OutputLayoutOptions layout;
};

struct ConfigCase {
  std::string name;
  QuantConfig config;
};

QuantConfig Config(int bits, int64_t group_size, Scheme scheme, int group_dim, bool mse,
                   QuantDtype dtype = QuantDtype::kInt) {
  QuantConfig c;
  c.dtype = dtype;
  c.bits = bits;
  c.group_size = group_size;
  c.scheme = scheme;
  c.group_dim = group_dim;
  c.enable_mse_search = mse;
  return c;
}

// The property: the stacked result is each expert slice's result, in slice order (packed), or
// the slices' fake values put back in the stacked layout (fake).
void ExpectFusedEqualsSliced(const std::string& name, const std::vector<int64_t>& shape,
                             ElemType dtype, ExpertLayout el, const QuantConfig& config,
                             const OutputLayoutOptions& layout, const Engine& engine) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const std::vector<uint8_t> data = RandomBytes(dtype, n, static_cast<uint32_t>(n + shape[1]));
  absl::StatusOr<LayoutOutputs> fused =
      QuantizeTensorToLayout(TensorInput{name, dtype, shape, data}, config, layout, el, engine);
  ASSERT_THAT(fused, IsOk());
  absl::StatusOr<std::vector<ExpertSlice>> slices = PlanExpertSlices(name, shape, el, std::nullopt);
  ASSERT_THAT(slices, IsOk());
  const int es = ElemSize(dtype);
  std::vector<PackedTensor> sliced;
  std::vector<uint8_t> fake(data.size(), 0);
  int64_t elements = 0;
  for (const ExpertSlice& s : *slices) {
    std::vector<uint8_t> piece(s.out * s.in * es);
    GatherExpertSlice(data.data(), shape, es, el.transposed, s, piece.data());
    absl::StatusOr<LayoutOutputs> one = QuantizeToLayout(
        TensorInput{s.layer + ".weight", dtype, {s.out, s.in}, piece}, config, layout, engine);
    ASSERT_THAT(one, IsOk()) << s.layer;
    elements += one->metrics.elements;
    if (layout.layout == OutputLayout::kFake) {
      ScatterExpertSlice(one->tensors[0].data.data(), shape, es, el.transposed, s, fake.data());
    } else {
      for (PackedTensor& t : one->tensors) sliced.push_back(std::move(t));
    }
  }
  EXPECT_EQ(fused->metrics.elements, elements);
  if (layout.layout == OutputLayout::kFake) {
    ASSERT_EQ(fused->tensors.size(), 1u);
    EXPECT_EQ(fused->tensors[0].name, name);
    EXPECT_EQ(fused->tensors[0].shape, shape);
    EXPECT_TRUE(fused->tensors[0].data == fake) << "fake-quant values differ";
    return;
  }
  ASSERT_EQ(fused->tensors.size(), sliced.size());
  for (size_t i = 0; i < sliced.size(); ++i) {
    EXPECT_EQ(fused->tensors[i].name, sliced[i].name);
    EXPECT_EQ(fused->tensors[i].dtype, sliced[i].dtype);
    EXPECT_EQ(fused->tensors[i].shape, sliced[i].shape);
    EXPECT_TRUE(fused->tensors[i].data == sliced[i].data) << sliced[i].name << " bytes differ";
  }
}

TEST(ExpertsProperty, FusedEqualsSlicedForEveryFormatGroupDimAndMseSearch) {
  const std::unique_ptr<Engine> one = *Engine::Create({1, ""});
  const std::unique_ptr<Engine> two = *Engine::Create({2, ""});
  const std::vector<FormatCase> formats = {
      {"fake", {OutputLayout::kFake, 1, GptqFormat::kV1}},
      {"inc", {OutputLayout::kInc, 1, GptqFormat::kV1}},
      {"inc-cd0", {OutputLayout::kInc, 0, GptqFormat::kV1}},
      {"gptq", {OutputLayout::kGptq, 1, GptqFormat::kV1}},
      {"gptq-v2", {OutputLayout::kGptq, 1, GptqFormat::kV2}},
  };
  const std::vector<ConfigCase> configs = {
      {"int4 asym g32", Config(4, 32, Scheme::kAsym, 1, false)},
      {"int4 sym g32 mse", Config(4, 32, Scheme::kSym, 1, true)},
      {"int8 asym g-1 mse", Config(8, -1, Scheme::kAsym, 1, true)},
      {"int4 asym g16 group_dim 0", Config(4, 16, Scheme::kAsym, 0, false)},
      {"int3 sym g32 group_dim 0 mse", Config(3, 32, Scheme::kSym, 0, true)},
      {"nf4 g32", Config(4, 32, Scheme::kSym, 1, false, QuantDtype::kNf4)},
  };
  int checked = 0;
  for (const ExpertLayout el : kLayouts) {
    // gate_up [E, 2I, H] or [E, H, 2I] with I = 32, H = 64; down [E, H, I] or [E, I, H].
    const int64_t E = 3, I = 32, H = 64;
    const std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
        {"model.layers.0.mlp.experts.gate_up_proj",
         el.transposed ? std::vector<int64_t>{E, H, 2 * I} : std::vector<int64_t>{E, 2 * I, H}},
        {"model.layers.0.mlp.experts.down_proj.weight",
         el.transposed ? std::vector<int64_t>{E, I, H} : std::vector<int64_t>{E, H, I}},
    };
    for (const FormatCase& f : formats) {
      for (const ConfigCase& c : configs) {
        const bool gptq = f.layout.layout == OutputLayout::kGptq;
        const bool int_only = c.config.dtype == QuantDtype::kInt;
        if (gptq && (c.config.group_dim == 0 || !int_only || c.config.bits == 3)) continue;
        for (const auto& [name, shape] : tensors) {
          for (ElemType dtype : {ElemType::kBF16, ElemType::kF32}) {
            SCOPED_TRACE(absl::StrCat(ExpertLayoutName(el), " ", f.name, " ", c.name, " ", name,
                                      " ", ElemTypeName(dtype)));
            for (const Engine* e : {one.get(), two.get()}) {
              ExpectFusedEqualsSliced(name, shape, dtype, el, c.config, f.layout, *e);
            }
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GE(checked, 300);
}

TEST(ExpertsProperty, MetricsCoverTheWholeTensor) {
  const std::unique_ptr<Engine> engine = *Engine::Create({2, ""});
  const std::vector<int64_t> shape = {4, 64, 32};
  const std::vector<uint8_t> data = RandomBytes(ElemType::kF32, 4 * 64 * 32, 3);
  const QuantConfig c = Config(4, 32, Scheme::kAsym, 1, true);
  absl::StatusOr<LayoutOutputs> fused =
      QuantizeTensorToLayout(TensorInput{"m.experts.gate_up_proj", ElemType::kF32, shape, data}, c,
                             {OutputLayout::kFake, 1, GptqFormat::kV1}, ExpertLayout{}, *engine);
  ASSERT_THAT(fused, IsOk());
  const TensorMetrics& m = fused->metrics;
  EXPECT_EQ(m.elements, 4 * 64 * 32);
  EXPECT_EQ(m.groups, 4 * 64);
  // The whole tensor's error, recomputed from the fake values.
  double err = 0, sig = 0, max_err = 0;
  for (size_t i = 0; i < data.size() / 4; ++i) {
    float x, q;
    std::memcpy(&x, &data[4 * i], 4);
    std::memcpy(&q, &fused->tensors[0].data[4 * i], 4);
    err += (double(x) - q) * (double(x) - q);
    sig += double(x) * x;
    max_err = std::max(max_err, std::fabs(double(x) - q));
  }
  EXPECT_NEAR(m.mse, err / m.elements, 1e-5 * m.mse);
  EXPECT_NEAR(m.snr_db, 10 * std::log10(sig / err), 1e-4);
  EXPECT_FLOAT_EQ(m.max_abs_error, max_err);
  EXPECT_LE(m.clip_ratio, 1.0);
  EXPECT_GE(m.clip_ratio, 0.805);
}

TEST(ExpertsProperty, StackedTensorsNeedALayoutAndAFittingShape) {
  const std::unique_ptr<Engine> engine = *Engine::Create({1, ""});
  const std::vector<uint8_t> data = RandomBytes(ElemType::kF32, 2 * 6 * 4, 1);
  const TensorInput in{"m.experts.gate_up_proj", ElemType::kF32, {2, 6, 4}, data};
  const OutputLayoutOptions fake{OutputLayout::kFake, 1, GptqFormat::kV1};
  EXPECT_THAT(QuantizeTensorToLayout(in, Config(4, 4, Scheme::kAsym, 1, false), fake, std::nullopt,
                                     *engine),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"m.experts.gate_up_proj\""), HasSubstr("expert layout"))));
  const TensorInput odd{"m.experts.gate_up_proj", ElemType::kF32, {2, 8, 3}, data};
  EXPECT_THAT(QuantizeTensorToLayout(odd, Config(4, 4, Scheme::kAsym, 1, false), fake,
                                     ExpertLayout{true, true}, *engine),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd")));
  // An expert that cannot be quantized names the tensor and the expert.
  std::vector<uint8_t> nan = data;
  const float v = NAN;
  std::memcpy(&nan[4 * (6 * 4 + 5)], &v, 4);  // expert 1
  EXPECT_THAT(
      QuantizeTensorToLayout(TensorInput{in.name, in.dtype, in.shape, nan},
                             Config(4, 4, Scheme::kAsym, 1, false), fake, ExpertLayout{}, *engine),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"m.experts.gate_up_proj\" expert 1"), HasSubstr("NaN"))));
}

// ---------------------------------------------------------------------------------------------
// RunQuantize on the synthetic MoE checkpoints
// ---------------------------------------------------------------------------------------------

class MoeRunTest : public ::testing::Test {
 protected:
  void SetUp() override { backend_ = *LocalBackend::Create({2, ""}); }

  std::string Synth(const std::string& shape, ElemType dtype = ElemType::kBF16) {
    const std::string dir = dir_ + "/" + shape;
    SynthOptions o;
    o.shape = *SynthShapeByName(shape);
    o.output_dir = dir;
    o.seed = 11;
    o.dtype = dtype;
    EXPECT_THAT(WriteSynthCheckpoint(o, *engine_), IsOk());
    return dir;
  }

  absl::StatusOr<QuantizeOutcome> Run(QuantizeRunOptions o) {
    std::ostringstream out;
    Progress progress(ProgressMode::kQuiet, out);
    return RunQuantize(o, *backend_, progress);
  }

  QuantizeRunOptions Gptq(const std::string& in, const std::string& out) {
    QuantizeRunOptions o;
    o.input = in;
    o.output = out;
    o.format = OutputLayout::kGptq;
    o.config_json = R"({"bits": 4, "group_size": 128, "scheme": "sym"})";
    return o;
  }

  const std::string dir_ = testing::FreshTestDir();
  std::unique_ptr<Engine> engine_ = *Engine::Create({2, ""});
  std::unique_ptr<LocalBackend> backend_;
};

const TensorReport* Report(const QuantizeOutcome& o, const std::string& name) {
  for (const TensorReport& t : o.tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

TEST_F(MoeRunTest, EveryLayoutQuantizesEveryExpertAndCompressesTheCheckpoint) {
  struct Case {
    std::string shape;
    std::string expert_prefix;  // where per-expert outputs go
    std::string router;
  };
  for (const Case& c : std::vector<Case>{
           {"moe-tiny", "model.layers.1.mlp.experts.", "model.layers.1.mlp.gate.weight"},
           {"moe-tiny-per-expert", "model.layers.1.mlp.experts.", "model.layers.1.mlp.gate.weight"},
           {"moe-tiny-interleaved", "model.layers.1.mlp.experts.",
            "model.layers.1.mlp.router.weight"},
           {"moe-tiny-transposed", "model.layers.1.feed_forward.experts.",
            "model.layers.1.feed_forward.router.weight"}}) {
    SCOPED_TRACE(c.shape);
    const std::string in = Synth(c.shape);
    const std::string out = dir_ + "/" + c.shape + "-gptq";
    absl::StatusOr<QuantizeOutcome> r = Run(Gptq(in, out));
    ASSERT_THAT(r, IsOk());
    // int4 g128 on a checkpoint whose experts hold ~90% of the bytes: ~3.5x, not 1.07x.
    const double ratio = double(r->summary.bytes_before) / r->summary.bytes_after;
    EXPECT_GT(ratio, 3.4);
    EXPECT_LT(ratio, 4.0);
    const TensorReport* router = Report(*r, c.router);
    ASSERT_NE(router, nullptr);
    EXPECT_EQ(router->action, "skipped");
    EXPECT_THAT(router->reason, HasSubstr("MoE router"));
    auto file = SafetensorsFile::Open(out + "/model.safetensors");
    ASSERT_THAT(file, IsOk());
    for (int e : {0, 15}) {
      for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
        for (const char* part : {"qweight", "qzeros", "scales", "g_idx"}) {
          const std::string n = absl::StrCat(c.expert_prefix, e, ".", proj, ".", part);
          EXPECT_NE(file->Find(n), nullptr) << n;
        }
      }
    }
    EXPECT_EQ(file->Find(c.expert_prefix + "gate_up_proj"), nullptr);
    EXPECT_EQ(file->Find(c.router)->dtype, ElemType::kBF16);
    // GPT-OSS expert biases follow their weights, as float16.
    if (c.shape == "moe-tiny-interleaved") {
      const TensorInfo* b = file->Find(c.expert_prefix + "7.up_proj.bias");
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(b->dtype, ElemType::kF16);
      EXPECT_EQ(b->shape, std::vector<int64_t>{256});
      EXPECT_EQ(file->Find(c.expert_prefix + "gate_up_proj_bias"), nullptr);
    }
    const std::unique_ptr<Engine> engine = *Engine::Create({2, ""});
    absl::StatusOr<VerifyReport> v = VerifyCheckpoint(in, out, {}, *engine);
    ASSERT_THAT(v, IsOk());
    EXPECT_TRUE(v->problems.empty()) << v->problems.front();
  }
}

TEST_F(MoeRunTest, FakeQuantKeepsTheFusedTensorInItsLayout) {
  const std::string in = Synth("moe-tiny-interleaved");
  QuantizeRunOptions o = Gptq(in, dir_ + "/fake");
  o.format = OutputLayout::kFake;
  absl::StatusOr<QuantizeOutcome> r = Run(o);
  ASSERT_THAT(r, IsOk());
  auto file = SafetensorsFile::Open(o.output + "/model.safetensors");
  ASSERT_THAT(file, IsOk());
  const TensorInfo* t = file->Find("model.layers.0.mlp.experts.gate_up_proj");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{16, 256, 512}));
  EXPECT_EQ(t->dtype, ElemType::kBF16);
  const TensorReport* rep = Report(*r, "model.layers.0.mlp.experts.gate_up_proj");
  ASSERT_NE(rep, nullptr);
  EXPECT_EQ(rep->action, "quantized");
  EXPECT_THAT(rep->reason,
              HasSubstr("16 experts quantized one by one as 32 weights "
                        "(in-out-interleaved from config.json model_type \"gpt_oss\")"));
}

TEST_F(MoeRunTest, UnknownLayoutIsAnErrorNamingTheTensorAndTheFlag) {
  // A stacked checkpoint as a bare file: no config.json to take the layout from.
  const std::string in = Synth("moe-tiny");
  const std::string file = dir_ + "/bare.safetensors";
  fs::copy_file(in + "/model.safetensors", file);
  QuantizeRunOptions o = Gptq(file, dir_ + "/bare-out.safetensors");
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("\"model.layers.0.mlp.experts.gate_up_proj\" "
                                               "[16, 512, 256]"),
                                     HasSubstr("unknown layout"), HasSubstr("--expert-layout"))));
  EXPECT_FALSE(fs::exists(o.output));
  EXPECT_FALSE(fs::exists(o.output + ".partial"));
  // With the flag it goes through; a layout that contradicts config.json's hidden size does not.
  o.expert_layout = ExpertLayout{false, false};
  EXPECT_THAT(Run(o), IsOk());
  QuantizeRunOptions wrong = Gptq(in, dir_ + "/wrong");
  wrong.expert_layout = ExpertLayout{true, false};
  EXPECT_THAT(Run(wrong), StatusIs(absl::StatusCode::kInvalidArgument,
                                   AllOf(HasSubstr("as in-out experts"), HasSubstr("hidden_size"),
                                         HasSubstr("layout from --expert-layout"))));
  EXPECT_FALSE(fs::exists(wrong.output));
}

TEST_F(MoeRunTest, ExpertsOfOneLayerMustShareOneConfig) {
  const std::string fused = Synth("moe-tiny");
  QuantizeRunOptions o = Gptq(fused, dir_ + "/split");
  // gate_up and down of one layer's experts with different bits.
  o.config_json =
      R"({"bits": 4, "group_size": 128, "scheme": "sym",
          "weight_config": {"*.layers.2.mlp.experts.down_proj": {"bits": 8}}})";
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("MoE layer \"model.layers.2.mlp.experts\""),
                                     HasSubstr("must share one config"),
                                     HasSubstr("model.layers.2.mlp.experts.down_proj"))));
  EXPECT_FALSE(fs::exists(o.output));
  // An entry naming one expert of a stacked tensor.
  o.config_json =
      R"({"bits": 4, "group_size": 128, "scheme": "sym",
          "weight_config": {"model.layers.1.mlp.experts.5.up_proj": {"bits": 8}}})";
  EXPECT_THAT(
      Run(o),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("weight_config entry \"model.layers.1.mlp.experts.5.up_proj\""),
                     HasSubstr("expert 5 of tensor \"model.layers.1.mlp.experts.gate_up_proj\""))));
  // Per-expert tensors: one expert left in float splits the layer too.
  const std::string per = Synth("moe-tiny-per-expert");
  o = Gptq(per, dir_ + "/split-per");
  o.exclude = {"model.layers.3.mlp.experts.9.down_proj"};
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("MoE layer \"model.layers.3.mlp.experts\""),
                                     HasSubstr("is not quantized (matched --exclude"))));
  EXPECT_FALSE(fs::exists(o.output));
  // A whole layer's experts at 8 bits is fine.
  o.exclude.clear();
  o.config_json =
      R"({"bits": 4, "group_size": 128, "scheme": "sym",
          "weight_config": {"re:model\\.layers\\.3\\.mlp\\.experts\\..*": {"bits": 8}}})";
  EXPECT_THAT(Run(o), IsOk());
}

TEST_F(MoeRunTest, Fp8ExpertsAreDequantizedThenQuantizedPerExpert) {
  const std::string in = Synth("moe-tiny", ElemType::kF8E4M3);
  absl::StatusOr<QuantizeOutcome> r = Run(Gptq(in, dir_ + "/fp8-gptq"));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->summary.quantized, 4 * 6);
  EXPECT_EQ(r->summary.consumed, 4 * 6);
  const TensorReport* t = Report(*r, "model.layers.0.mlp.experts.down_proj_scale_inv");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->action, "consumed");
  auto file = SafetensorsFile::Open(dir_ + "/fp8-gptq/model.safetensors");
  ASSERT_THAT(file, IsOk());
  EXPECT_NE(file->Find("model.layers.0.mlp.experts.3.up_proj.qweight"), nullptr);
  for (const TensorInfo& x : file->tensors()) {
    EXPECT_FALSE(absl::StrContains(x.name, "scale_inv")) << x.name;
  }
  const std::unique_ptr<Engine> engine = *Engine::Create({2, ""});
  absl::StatusOr<VerifyReport> v = VerifyCheckpoint(in, dir_ + "/fp8-gptq", {}, *engine);
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->problems.empty()) << v->problems.front();
}

}  // namespace
}  // namespace rtnq::client
