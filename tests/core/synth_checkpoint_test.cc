// Synthetic checkpoints: Llama names and shapes, determinism across thread counts, sharding,
// and weights that look trained (finite, heavy-tailed, norms near 1).
#include "client/synth/synth_checkpoint.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/expert_layout.h"
#include "core/io/fp8_source.h"
#include "core/io/safetensors.h"
#include "core/io/sharded_checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

namespace fs = std::filesystem;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

fs::path RootDir() {
  return fs::path(::testing::TempDir()) / ("rtnq_synth_" + std::to_string(::getpid()));
}

// Removes this process's checkpoints when the tests are done (they are megabytes each).
class RemoveRootDir : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(RootDir()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new RemoveRootDir);

std::string TestDir(const std::string& leaf = "out") {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = RootDir() / (std::string(info->test_suite_name()) + "." + info->name()) / leaf;
  fs::remove_all(dir);
  return dir.string();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::unique_ptr<Engine> MakeEngine(int threads) {
  auto engine = Engine::Create({.threads = threads});
  EXPECT_THAT(engine.status(), IsOk());
  return std::move(engine).value();
}

SynthOptions TinyOptions(const std::string& dir) {
  SynthOptions o;
  o.shape = SynthShapeByName("tiny").value();
  o.output_dir = dir;
  o.seed = 7;
  return o;
}

std::vector<float> AsFloats(const TensorInfo& t) {
  std::vector<float> out(t.num_elements);
  for (int64_t i = 0; i < t.num_elements; ++i) {
    uint16_t h;
    switch (t.dtype) {
      case ElemType::kBF16:
        std::memcpy(&h, t.data.data() + 2 * i, 2);
        out[i] = Bf16ToFloat(h);
        break;
      case ElemType::kF16:
        std::memcpy(&h, t.data.data() + 2 * i, 2);
        out[i] = HalfToFloat(h);
        break;
      default:
        std::memcpy(&out[i], t.data.data() + 4 * i, 4);
    }
  }
  return out;
}

TEST(SynthShapeTest, PresetsAreValidAndGptqFriendly) {
  ASSERT_EQ(SynthShapePresets().size(), 8u);
  for (const SynthShape& s : SynthShapePresets()) {
    EXPECT_THAT(ValidateSynthShape(s), IsOk()) << s.name;
    EXPECT_EQ(s.intermediate % 128, 0) << s.name;
    EXPECT_EQ(s.hidden % 128, 0) << s.name;
  }
  auto tiny = SynthShapeByName("tiny");
  ASSERT_THAT(tiny.status(), IsOk());
  EXPECT_EQ(tiny->hidden, 256);
  EXPECT_EQ(tiny->intermediate, 768);
  EXPECT_EQ(tiny->layers, 2);
  EXPECT_EQ(tiny->heads, 4);
  EXPECT_EQ(tiny->vocab, 1024);
  auto big = SynthShapeByName("llama7b-layer");
  ASSERT_THAT(big.status(), IsOk());
  EXPECT_EQ(big->intermediate, 11008);
  EXPECT_EQ(big->vocab, 32000);
  auto l70 = SynthShapeByName("llama70b-layer");
  ASSERT_THAT(l70.status(), IsOk());
  EXPECT_EQ(l70->hidden, 8192);
  EXPECT_EQ(l70->intermediate, 28672);
  EXPECT_EQ(l70->heads, 64);
  EXPECT_EQ(l70->kv_heads, 8);
  EXPECT_EQ(l70->head_dim(), 128);
  EXPECT_EQ(l70->layers, 1);
  EXPECT_EQ(l70->vocab, 32000);
  EXPECT_THAT(
      SynthShapeByName("huge").status(),
      StatusIs(
          absl::StatusCode::kNotFound,
          HasSubstr("tiny, small, llama7b-layer, llama70b-layer, moe-tiny, moe-tiny-per-expert")));
}

// The 70B layer's tensors as Llama-2/3-70B stores them (GQA: k and v have 8 heads of 128), and
// its size: about 1.6 GiB of bf16 for the layer, 2.6 GiB with embeddings and lm_head.
TEST(SynthShapeTest, Llama70bLayerSpecs) {
  const SynthShape s = SynthShapeByName("llama70b-layer").value();
  auto bytes = [](const std::vector<TensorSpec>& specs) {
    uint64_t n = 0;
    for (const TensorSpec& t : specs) {
      uint64_t b = ElemSize(t.dtype);
      for (int64_t d : t.shape) b *= static_cast<uint64_t>(d);
      n += b;
    }
    return n;
  };
  const std::vector<TensorSpec> layer = SynthTensorSpecs(s, ElemType::kBF16, false);
  ASSERT_EQ(layer.size(), 10u);
  EXPECT_EQ(layer[0].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_THAT(layer[1].shape, ElementsAre(1024, 8192));   // k_proj
  EXPECT_THAT(layer[2].shape, ElementsAre(1024, 8192));   // v_proj
  EXPECT_THAT(layer[4].shape, ElementsAre(28672, 8192));  // gate_proj
  EXPECT_THAT(layer[6].shape, ElementsAre(8192, 28672));  // down_proj
  EXPECT_EQ(bytes(layer), 1711325184u);                   // 1.59 GiB
  const std::vector<TensorSpec> all = SynthTensorSpecs(s, ElemType::kBF16);
  ASSERT_EQ(all.size(), 12u);
  EXPECT_EQ(all.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(all.back().name, "lm_head.weight");
  EXPECT_EQ(bytes(all), 1711325184u + 2u * 32000 * 8192 * 2);  // 2.57 GiB
  SynthShape three = s;
  three.layers = 3;
  EXPECT_EQ(SynthTensorSpecs(three, ElemType::kBF16, false).size(), 28u);
}

TEST(SynthShapeTest, RejectsBadDimensions) {
  SynthShape s = SynthShapeByName("tiny").value();
  s.kv_heads = 3;
  EXPECT_THAT(ValidateSynthShape(s),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kv_heads 3")));
  s = SynthShapeByName("tiny").value();
  s.vocab = 0;
  EXPECT_THAT(ValidateSynthShape(s),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vocab must be > 0")));
}

TEST(SynthCheckpointTest, TinyHasLlamaNamesShapesAndDtypes) {
  const std::string dir = TestDir();
  auto engine = MakeEngine(2);
  ASSERT_THAT(WriteSynthCheckpoint(TinyOptions(dir), *engine), IsOk());
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_THAT(file.status(), IsOk());
  EXPECT_EQ(file->tensors().size(), 1u + 2 * 9 + 2);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"model.embed_tokens.weight", {1024, 256}},
      {"model.layers.0.self_attn.q_proj.weight", {256, 256}},
      {"model.layers.0.self_attn.k_proj.weight", {128, 256}},  // 2 kv heads of 64
      {"model.layers.1.self_attn.v_proj.weight", {128, 256}},
      {"model.layers.1.self_attn.o_proj.weight", {256, 256}},
      {"model.layers.0.mlp.gate_proj.weight", {768, 256}},
      {"model.layers.0.mlp.up_proj.weight", {768, 256}},
      {"model.layers.1.mlp.down_proj.weight", {256, 768}},
      {"model.layers.1.input_layernorm.weight", {256}},
      {"model.layers.0.post_attention_layernorm.weight", {256}},
      {"model.norm.weight", {256}},
      {"lm_head.weight", {1024, 256}},
  };
  for (const auto& [name, shape] : expected) {
    const TensorInfo* t = file->Find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, shape) << name;
    EXPECT_EQ(t->dtype, ElemType::kBF16) << name;
  }
  EXPECT_EQ(file->tensors().front().name, "model.embed_tokens.weight");
  EXPECT_EQ(file->tensors().back().name, "lm_head.weight");
  EXPECT_FALSE(fs::exists(dir + "/" + kShardIndexFileName));

  auto config = nlohmann::json::parse(ReadAll(dir + "/config.json"));
  EXPECT_EQ(config["architectures"], nlohmann::json({"LlamaForCausalLM"}));
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["hidden_size"], 256);
  EXPECT_EQ(config["intermediate_size"], 768);
  EXPECT_EQ(config["num_attention_heads"], 4);
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["num_hidden_layers"], 2);
  EXPECT_EQ(config["vocab_size"], 1024);
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["tie_word_embeddings"], false);
  EXPECT_TRUE(config.contains("rms_norm_eps"));
  EXPECT_TRUE(config.contains("max_position_embeddings"));
}

// More layers and no embeddings: the layers repeat, embed_tokens and lm_head are left out, and
// layers common to both checkpoints have the same bytes (values depend on names, not positions).
TEST(SynthCheckpointTest, LayersAndNoEmbeddings) {
  const std::string dir = TestDir();
  SynthOptions o = TinyOptions(dir);
  o.shape.layers = 3;
  o.embeddings = false;
  ASSERT_THAT(WriteSynthCheckpoint(o, *MakeEngine(2)), IsOk());
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_THAT(file.status(), IsOk());
  EXPECT_EQ(file->tensors().size(), 3u * 9 + 1);
  EXPECT_EQ(file->Find("model.embed_tokens.weight"), nullptr);
  EXPECT_EQ(file->Find("lm_head.weight"), nullptr);
  ASSERT_NE(file->Find("model.layers.2.mlp.down_proj.weight"), nullptr);
  const std::string full = TestDir("full");
  ASSERT_THAT(WriteSynthCheckpoint(TinyOptions(full), *MakeEngine(1)), IsOk());
  auto two = SafetensorsFile::Open(full + "/model.safetensors");
  ASSERT_THAT(two.status(), IsOk());
  const std::string name = "model.layers.1.self_attn.q_proj.weight";
  EXPECT_TRUE(std::equal(file->Find(name)->data.begin(), file->Find(name)->data.end(),
                         two->Find(name)->data.begin(), two->Find(name)->data.end()));
  auto config = nlohmann::json::parse(ReadAll(dir + "/config.json"));
  EXPECT_EQ(config["num_hidden_layers"], 3);
}

TEST(SynthCheckpointTest, SameSeedSameBytesWhateverTheThreads) {
  const std::string a = TestDir("a"), b = TestDir("b"), c = TestDir("c");
  ASSERT_THAT(WriteSynthCheckpoint(TinyOptions(a), *MakeEngine(1)), IsOk());
  ASSERT_THAT(WriteSynthCheckpoint(TinyOptions(b), *MakeEngine(0)), IsOk());
  SynthOptions other = TinyOptions(c);
  other.seed = 8;
  ASSERT_THAT(WriteSynthCheckpoint(other, *MakeEngine(0)), IsOk());
  const std::string bytes_a = ReadAll(a + "/model.safetensors");
  EXPECT_GT(bytes_a.size(), 4'000'000u);
  EXPECT_EQ(bytes_a, ReadAll(b + "/model.safetensors"));
  EXPECT_EQ(ReadAll(a + "/config.json"), ReadAll(b + "/config.json"));
  EXPECT_NE(bytes_a, ReadAll(c + "/model.safetensors"));
}

TEST(SynthCheckpointTest, ShardedOutputOpensAndMatchesTheSingleFile) {
  const std::string single = TestDir("single"), sharded = TestDir("sharded");
  auto engine = MakeEngine(2);
  ASSERT_THAT(WriteSynthCheckpoint(TinyOptions(single), *engine), IsOk());
  SynthOptions o = TinyOptions(sharded);
  o.shards = 3;
  ASSERT_THAT(WriteSynthCheckpoint(o, *engine), IsOk());
  EXPECT_TRUE(fs::exists(sharded + "/" + kShardIndexFileName));
  EXPECT_FALSE(fs::exists(sharded + "/model.safetensors"));
  auto ckpt = ShardedCheckpoint::Open(sharded);
  ASSERT_THAT(ckpt.status(), IsOk());
  ASSERT_EQ(ckpt->shards().size(), 3u);
  EXPECT_THAT(ckpt->shards()[0].path(), HasSubstr("model-00001-of-00003.safetensors"));
  for (const SafetensorsFile& shard : ckpt->shards()) EXPECT_FALSE(shard.tensors().empty());
  auto one = SafetensorsFile::Open(single + "/model.safetensors");
  ASSERT_THAT(one.status(), IsOk());
  EXPECT_EQ(ckpt->names().size(), one->tensors().size());
  uint64_t total = 0;
  for (const TensorInfo& t : one->tensors()) {
    const TensorInfo* s = ckpt->Find(t.name);
    ASSERT_NE(s, nullptr) << t.name;
    EXPECT_EQ(s->shape, t.shape);
    EXPECT_TRUE(std::equal(s->data.begin(), s->data.end(), t.data.begin(), t.data.end())) << t.name;
    total += t.data.size();
  }
  ASSERT_TRUE(ckpt->total_size().has_value());
  EXPECT_EQ(*ckpt->total_size(), total);
}

TEST(SynthCheckpointTest, WeightsAreFiniteHeavyTailedWithOutliersAndNormsNearOne) {
  const std::string dir = TestDir();
  SynthOptions o = TinyOptions(dir);
  o.dtype = ElemType::kF32;
  ASSERT_THAT(WriteSynthCheckpoint(o, *MakeEngine(0)), IsOk());
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_THAT(file.status(), IsOk());
  for (const TensorInfo& t : file->tensors()) {
    EXPECT_EQ(t.dtype, ElemType::kF32);
    const std::vector<float> v = AsFloats(t);
    double sum = 0;
    for (float x : v) {
      ASSERT_TRUE(std::isfinite(x)) << t.name;
      sum += x;
    }
    const double mean = sum / v.size();
    if (t.shape.size() == 1) {
      for (float x : v) EXPECT_NEAR(x, 1.0, 0.06) << t.name;
      EXPECT_NEAR(mean, 1.0, 0.01) << t.name;
      continue;
    }
    double m2 = 0, m4 = 0;
    for (float x : v) {
      const double d = x - mean;
      m2 += d * d;
      m4 += d * d * d * d;
    }
    m2 /= v.size();
    m4 /= v.size();
    EXPECT_GT(m4 / (m2 * m2), 3.0) << t.name << " is not heavy-tailed";
    EXPECT_LT(std::abs(mean), 0.002) << t.name;
    EXPECT_GT(std::sqrt(m2), 0.005) << t.name;
    EXPECT_LT(std::sqrt(m2), 0.2) << t.name;
  }
  // Input projections share outlier input channels: some column's mean |w| is far above the
  // median column's.
  const TensorInfo* q = file->Find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  const std::vector<float> w = AsFloats(*q);
  std::vector<double> col_abs(256, 0);
  for (int64_t r = 0; r < 256; ++r) {
    for (int64_t c = 0; c < 256; ++c) col_abs[c] += std::abs(w[r * 256 + c]);
  }
  std::vector<double> sorted = col_abs;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_GT(sorted.back() / sorted[128], 6.0);
  EXPECT_LT(sorted[250] / sorted[128], 2.0);  // only a few
}

TEST(SynthCheckpointTest, F16WorksAndConfigSaysSo) {
  const std::string dir = TestDir();
  SynthOptions o = TinyOptions(dir);
  o.dtype = ElemType::kF16;
  ASSERT_THAT(WriteSynthCheckpoint(o, *MakeEngine(2)), IsOk());
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_THAT(file.status(), IsOk());
  EXPECT_EQ(file->Find("lm_head.weight")->dtype, ElemType::kF16);
  EXPECT_EQ(nlohmann::json::parse(ReadAll(dir + "/config.json"))["torch_dtype"], "float16");
}

TEST(SynthCheckpointTest, RejectsBadOptionsAndLeavesNoFiles) {
  auto engine = MakeEngine(1);
  SynthOptions o = TinyOptions(TestDir());
  o.shards = 22;  // tiny has 21 tensors
  EXPECT_THAT(WriteSynthCheckpoint(o, *engine),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("shards must be in [1, 21]")));
  o.shards = 0;
  EXPECT_THAT(WriteSynthCheckpoint(o, *engine), StatusIs(absl::StatusCode::kInvalidArgument));
  o.shards = 1;
  o.dtype = ElemType::kI32;
  EXPECT_THAT(WriteSynthCheckpoint(o, *engine),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("I32")));
  EXPECT_FALSE(fs::exists(o.output_dir));

  // A directory already holding files is refused rather than mixed with stale shards.
  o.dtype = ElemType::kBF16;
  fs::create_directories(o.output_dir);
  std::ofstream(o.output_dir + "/stale.txt") << "x";
  EXPECT_THAT(WriteSynthCheckpoint(o, *engine),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not empty")));
  EXPECT_THAT(std::vector<std::string>({fs::directory_iterator(o.output_dir)->path().filename()}),
              ElementsAre("stale.txt"));
}

// ---------------------------------------------------------------------------------------------
// MoE presets and FP8
// ---------------------------------------------------------------------------------------------

SynthOptions MoeOptions(const std::string& dir, const std::string& shape,
                        ElemType dtype = ElemType::kBF16) {
  SynthOptions o;
  o.shape = SynthShapeByName(shape).value();
  o.output_dir = dir;
  o.seed = 3;
  o.dtype = dtype;
  return o;
}

struct MoeCase {
  std::string shape;
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  std::string model_type;
  std::optional<ExpertLayout> layout;  // what config.json implies
};

TEST(SynthMoeTest, EachStorageHasItsFamilysNamesShapesAndConfig) {
  const std::vector<MoeCase> cases = {
      {"moe-tiny",
       {{"model.layers.0.mlp.gate.weight", {16, 256}},
        {"model.layers.0.mlp.experts.gate_up_proj", {16, 512, 256}},
        {"model.layers.3.mlp.experts.down_proj", {16, 256, 256}}},
       "qwen3_moe",
       ExpertLayout{false, false}},
      {"moe-tiny-per-expert",
       {{"model.layers.0.mlp.gate.weight", {16, 256}},
        {"model.layers.0.mlp.experts.0.gate_proj.weight", {256, 256}},
        {"model.layers.3.mlp.experts.15.down_proj.weight", {256, 256}}},
       "qwen3_moe",
       ExpertLayout{false, false}},
      {"moe-tiny-interleaved",
       {{"model.layers.0.mlp.router.weight", {16, 256}},
        {"model.layers.0.mlp.router.bias", {16}},
        {"model.layers.0.mlp.experts.gate_up_proj", {16, 256, 512}},
        {"model.layers.0.mlp.experts.gate_up_proj_bias", {16, 512}},
        {"model.layers.0.mlp.experts.down_proj", {16, 256, 256}},
        {"model.layers.0.mlp.experts.down_proj_bias", {16, 256}}},
       "gpt_oss",
       ExpertLayout{true, true}},
      {"moe-tiny-transposed",
       {{"model.layers.0.feed_forward.router.weight", {16, 256}},
        {"model.layers.0.feed_forward.experts.gate_up_proj", {16, 256, 512}},
        {"model.layers.0.feed_forward.shared_expert.down_proj.weight", {256, 256}}},
       "llama4_text",
       ExpertLayout{true, false}},
  };
  auto engine = MakeEngine(2);
  for (const MoeCase& c : cases) {
    SCOPED_TRACE(c.shape);
    const std::string dir = TestDir(c.shape);
    ASSERT_THAT(WriteSynthCheckpoint(MoeOptions(dir, c.shape), *engine), IsOk());
    auto file = SafetensorsFile::Open(dir + "/model.safetensors");
    ASSERT_THAT(file.status(), IsOk());
    for (const auto& [name, shape] : c.tensors) {
      const TensorInfo* t = file->Find(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_EQ(t->shape, shape) << name;
      EXPECT_EQ(t->dtype, ElemType::kBF16) << name;
    }
    // The experts hold most of the bytes, as in real MoE models.
    uint64_t experts = 0, total = 0;
    for (const TensorInfo& t : file->tensors()) {
      total += t.data.size();
      if (t.name.find(".experts.") != std::string::npos) experts += t.data.size();
    }
    EXPECT_GT(static_cast<double>(experts) / total, 0.85);
    const auto config = nlohmann::ordered_json::parse(ReadAll(dir + "/config.json"));
    EXPECT_EQ(config["model_type"], c.model_type);
    EXPECT_EQ(ExpertLayoutFromConfig(config), c.layout);
    EXPECT_EQ(HiddenSizeFromConfig(config), 256);
    // Every stacked tensor splits under the layout its config implies.
    for (const TensorInfo& t : file->tensors()) {
      if (StackedExpertsOf(t.name).has_value()) {
        EXPECT_THAT(PlanExpertSlices(t.name, t.shape, *c.layout, 256), IsOk()) << t.name;
      }
    }
  }
}

TEST(SynthMoeTest, Fp8ProjectionsCarryBlockScalesThatReproduceTheWeights) {
  const std::string dir = TestDir("fp8"), ref = TestDir("f32");
  auto engine = MakeEngine(2);
  ASSERT_THAT(WriteSynthCheckpoint(MoeOptions(dir, "moe-tiny", ElemType::kF8E4M3), *engine),
              IsOk());
  ASSERT_THAT(WriteSynthCheckpoint(MoeOptions(ref, "moe-tiny", ElemType::kF32), *engine), IsOk());
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  auto f32 = SafetensorsFile::Open(ref + "/model.safetensors");
  ASSERT_THAT(file.status(), IsOk());
  ASSERT_THAT(f32.status(), IsOk());
  const auto config = nlohmann::ordered_json::parse(ReadAll(dir + "/config.json"));
  EXPECT_EQ(config["quantization_config"]["quant_method"], "fp8");
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(file->Find("model.embed_tokens.weight")->dtype, ElemType::kBF16);
  EXPECT_EQ(file->Find("model.layers.0.mlp.gate.weight")->dtype, ElemType::kBF16);
  const TensorInfo* w = file->Find("model.layers.1.mlp.experts.gate_up_proj");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, ElemType::kF8E4M3);
  EXPECT_EQ(file->Find("model.layers.1.mlp.experts.gate_up_proj_scale_inv")->shape,
            (std::vector<int64_t>{16, 4, 2}));

  std::vector<TensorSpec> specs;
  for (const TensorInfo& t : file->tensors()) specs.push_back({t.name, t.dtype, t.shape});
  auto block = Fp8BlockFromConfig(config);
  ASSERT_THAT(block.status(), IsOk());
  absl::StatusOr<Fp8SourcePlan> plan = PlanFp8Sources(specs, *block);
  ASSERT_THAT(plan.status(), IsOk());
  EXPECT_EQ(plan->weights.size(), 4u * 6);  // q, k, v, o, gate_up, down per layer
  for (const auto& [name, layout] : plan->weights) {
    SCOPED_TRACE(name);
    const TensorInfo* t = file->Find(name);
    const TensorInfo* s = file->Find(layout.scale_name);
    auto deq = DequantizeFp8(name, t->dtype, t->data, layout, s->data, *engine);
    ASSERT_THAT(deq.status(), IsOk());
    const std::vector<float> want = AsFloats(*f32->Find(name));
    ASSERT_EQ(deq->size(), want.size());
    // E4M3 keeps 4 significant bits: relative error <= 2^-4, plus the subnormal step of the
    // block (scale * 2^-9) for small values.
    for (size_t k = 0; k < want.size(); ++k) {
      ASSERT_LE(std::fabs((*deq)[k] - want[k]), std::fabs(want[k]) * 0x1p-4f + 0.5f * 0x1p-9f) << k;
    }
  }
  // Same bytes for any thread count.
  const std::string again = TestDir("fp8-1thread");
  ASSERT_THAT(
      WriteSynthCheckpoint(MoeOptions(again, "moe-tiny", ElemType::kF8E4M3), *MakeEngine(1)),
      IsOk());
  EXPECT_EQ(ReadAll(dir + "/model.safetensors"), ReadAll(again + "/model.safetensors"));
}

}  // namespace
}  // namespace rtnq
