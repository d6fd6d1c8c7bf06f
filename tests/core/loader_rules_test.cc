// Loader rules: every rule refuses (--target of that engine) or warns (--target any) with a
// message naming the layer, and a checkpoint every engine loads passes all of them.
#include "core/layout/loader_rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testing/quant_testing.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IntConfig;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// One Llama decoder layer (hidden 4096, intermediate 11008) with every Linear quantized alike.
LoaderRulesInput Llama(std::string layout, const QuantConfig& cfg) {
  LoaderRulesInput in;
  in.layout = std::move(layout);
  const std::string p = "model.layers.0.";
  for (const char* m :
       {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}) {
    in.layers.push_back({p + m, cfg, 4096, 4096});
  }
  in.layers.push_back({p + "mlp.gate_proj", cfg, 11008, 4096});
  in.layers.push_back({p + "mlp.up_proj", cfg, 11008, 4096});
  in.layers.push_back({p + "mlp.down_proj", cfg, 4096, 11008});
  in.unquantized = {"lm_head"};
  return in;
}

const EngineVerdict& Verdict(const std::vector<EngineVerdict>& v, const std::string& engine) {
  for (const EngineVerdict& e : v) {
    if (e.engine == engine) return e;
  }
  static const EngineVerdict none;
  ADD_FAILURE() << "no verdict for " << engine;
  return none;
}

// The rule's message as --target vllm reports it (an error) and as --target any does (a warning).
void ExpectVllmRefusesAndAnyWarns(const LoaderRulesInput& in, const std::string& what) {
  const std::vector<EngineVerdict> v = CheckLoaders(in);
  EXPECT_FALSE(Verdict(v, "vLLM").loads);
  EXPECT_THAT(ApplyLoaderTarget(v, LoaderTarget::kVllm, in.layout).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--target vllm: vLLM would not load this"),
                             HasSubstr(in.layout), HasSubstr(what))));
  absl::StatusOr<std::vector<std::string>> warnings =
      ApplyLoaderTarget(v, LoaderTarget::kAny, in.layout);
  ASSERT_THAT(warnings.status(), IsOk());
  EXPECT_THAT(*warnings, Contains(AllOf(HasSubstr("vLLM: "), HasSubstr(what))));
}

TEST(LoaderRulesTest, SymFourBitGptqAwqAndCompressedTensorsLoadEverywhere) {
  for (const auto& [layout, scheme] : {std::pair<std::string, Scheme>{"gptq", Scheme::kSym},
                                       {"compressed-tensors", Scheme::kSym},
                                       {"compressed-tensors", Scheme::kAsym},
                                       {"awq", Scheme::kAsym},
                                       {"fake", Scheme::kAsym}}) {
    SCOPED_TRACE(layout);
    const LoaderRulesInput in = Llama(layout, IntConfig(4, scheme, 128));
    const std::vector<EngineVerdict> v = CheckLoaders(in);
    for (const EngineVerdict& e : v) {
      EXPECT_TRUE(e.loads) << e.engine << ": " << ::testing::PrintToString(e.problems);
      EXPECT_FALSE(e.kernel.empty()) << e.engine;
    }
    for (LoaderTarget t : {LoaderTarget::kAny, LoaderTarget::kVllm, LoaderTarget::kTransformers}) {
      absl::StatusOr<std::vector<std::string>> w = ApplyLoaderTarget(v, t, layout);
      ASSERT_THAT(w.status(), IsOk());
      if (t == LoaderTarget::kAny) {
        EXPECT_THAT(*w, IsEmpty());
      }
    }
  }
  EXPECT_EQ(Verdict(CheckLoaders(Llama("gptq", IntConfig(4, Scheme::kSym, 128))), "vLLM").kernel,
            "Marlin (gptq_marlin; auto_gptq in 2026 releases)");
  EXPECT_EQ(Verdict(CheckLoaders(Llama("awq", IntConfig(4, Scheme::kAsym, 128))), "vLLM").kernel,
            "awq_marlin (Marlin)");
}

TEST(LoaderRulesTest, FusedQkvWithDifferentConfigsNamesTheModuleItsPartsAndConfigs) {
  for (const char* layout : {"gptq", "compressed-tensors"}) {
    SCOPED_TRACE(layout);
    LoaderRulesInput in = Llama(layout, IntConfig(4, Scheme::kSym, 128));
    in.layers[0].config = IntConfig(8, Scheme::kSym, 128);  // q_proj
    ExpectVllmRefusesAndAnyWarns(
        in,
        "fused module model.layers.0.self_attn.qkv_proj: its 3 parts are loaded as one layer "
        "and need one config; got int8 sym g128 (model.layers.0.self_attn.q_proj), int4 sym g128 "
        "(model.layers.0.self_attn.k_proj, model.layers.0.self_attn.v_proj)");
  }
  // transformers loads each part on its own: compressed-tensors is fine there.
  LoaderRulesInput in = Llama("compressed-tensors", IntConfig(4, Scheme::kSym, 128));
  in.layers[0].config = IntConfig(8, Scheme::kSym, 128);
  EXPECT_THAT(ApplyLoaderTarget(CheckLoaders(in), LoaderTarget::kTransformers, in.layout).status(),
              IsOk());
}

TEST(LoaderRulesTest, GateUpPartlyUnquantizedIsRefused) {
  LoaderRulesInput in = Llama("awq", IntConfig(4, Scheme::kAsym, 128));
  in.layers.erase(in.layers.begin() + 5);  // up_proj left in float
  in.unquantized.push_back("model.layers.0.mlp.up_proj");
  ExpectVllmRefusesAndAnyWarns(in,
                               "fused module model.layers.0.mlp.gate_up_proj: its 2 parts are "
                               "loaded as one layer and need one config; got int4 asym g128 "
                               "(model.layers.0.mlp.gate_proj), unquantized "
                               "(model.layers.0.mlp.up_proj)");
}

TEST(LoaderRulesTest, ExpertsOfOneMoeLayerMustShareOneConfig) {
  LoaderRulesInput in;
  in.layout = "gptq";
  for (int e = 0; e < 8; ++e) {
    for (const char* m : {"gate_proj", "up_proj", "down_proj"}) {
      in.layers.push_back({"model.layers.1.mlp.experts." + std::to_string(e) + "." + m,
                           IntConfig(4, Scheme::kSym, 128), 0, 0});
    }
  }
  in.layers[22].config = IntConfig(8, Scheme::kSym, 128);  // expert 7's up_proj
  ExpectVllmRefusesAndAnyWarns(
      in,
      "fused module model.layers.1.mlp.experts: its 24 parts are loaded as one layer and need "
      "one config; got int4 sym g128 (model.layers.1.mlp.experts.0.gate_proj, "
      "model.layers.1.mlp.experts.0.up_proj, model.layers.1.mlp.experts.0.down_proj, and 20 "
      "more), int8 sym g128 (model.layers.1.mlp.experts.7.up_proj)");
}

TEST(LoaderRulesTest, GptqAsymIsNotServedByVllmAndSaysWhatIs) {
  LoaderRulesInput in = Llama("gptq", IntConfig(4, Scheme::kAsym, 128));
  in.gptq_format = GptqFormat::kV2;
  ExpectVllmRefusesAndAnyWarns(
      in,
      "7 layers (first model.layers.0.self_attn.q_proj, model.layers.0.self_attn.k_proj, "
      "model.layers.0.self_attn.v_proj): vLLM's Marlin GPTQ path takes 4- and 8-bit sym only "
      "and its 2026 releases refuse 4-bit asym GPTQ");
  const std::vector<EngineVerdict> v = CheckLoaders(in);
  EXPECT_THAT(Verdict(v, "vLLM").problems[0],
              HasSubstr("use the awq or compressed-tensors format"));
  EXPECT_TRUE(Verdict(v, "GPTQModel").loads);
  EXPECT_TRUE(Verdict(v, "transformers").loads);
  EXPECT_THAT(Verdict(v, "AutoGPTQ").problems,
              ElementsAre("AutoGPTQ refuses checkpoint_format \"gptq_v2\""));
}

TEST(LoaderRulesTest, GptqGroupSizeOutsideMarlinIsRefusedForVllm) {
  ExpectVllmRefusesAndAnyWarns(Llama("gptq", IntConfig(4, Scheme::kSym, 256)),
                               "Marlin takes group sizes -1, 32, 64 and 128, not 256");
}

TEST(LoaderRulesTest, GptqPerLayerOverridesAreRefusedForTransformersAndAutoGptq) {
  LoaderRulesInput in = Llama("gptq", IntConfig(4, Scheme::kSym, 128));
  in.layers[6].config = IntConfig(8, Scheme::kSym, 128);  // down_proj
  const std::vector<EngineVerdict> v = CheckLoaders(in);
  EXPECT_TRUE(Verdict(v, "vLLM").loads);
  EXPECT_TRUE(Verdict(v, "GPTQModel").loads);
  EXPECT_THAT(ApplyLoaderTarget(v, LoaderTarget::kTransformers, "gptq").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--target transformers: transformers would not load"),
                             HasSubstr("layer model.layers.0.mlp.down_proj: transformers' "
                                       "GPTQConfig ignores per-layer overrides"),
                             HasSubstr("(int8 sym g128)"))));
  EXPECT_THAT(Verdict(v, "AutoGPTQ").problems,
              ElementsAre(HasSubstr("layer model.layers.0.mlp.down_proj: AutoGPTQ ignores")));
}

TEST(LoaderRulesTest, AsymGptqV1IsRefusedByGptqModel) {
  LoaderRulesInput in = Llama("gptq", IntConfig(4, Scheme::kAsym, 128));
  in.gptq_format = GptqFormat::kV1;
  const std::vector<EngineVerdict> v = CheckLoaders(in);
  EXPECT_THAT(Verdict(v, "GPTQModel").problems,
              ElementsAre(HasSubstr("GPTQModel refuses asym checkpoint_format \"gptq\" (v1)")));
  EXPECT_THAT(
      ApplyLoaderTarget(v, LoaderTarget::kTransformers, "gptq").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("write asym GPTQ as gptq_v2")));
}

TEST(LoaderRulesTest, CompressedTensorsRules) {
  ExpectVllmRefusesAndAnyWarns(Llama("compressed-tensors", IntConfig(2, Scheme::kSym, 128)),
                               "vLLM loads 4- and 8-bit pack-quantized weights (its 2026 releases "
                               "add 2..7-bit sym), not 2-bit sym");
  LoaderRulesInput moe;
  moe.layout = "compressed-tensors";
  moe.layers.push_back(
      {"model.layers.1.mlp.experts.0.gate_proj", IntConfig(4, Scheme::kAsym, 128), 0, 0});
  moe.layers.push_back(
      {"model.layers.1.mlp.experts.0.down_proj", IntConfig(4, Scheme::kAsym, 128), 0, 0});
  ExpectVllmRefusesAndAnyWarns(moe,
                               "2 layers (first model.layers.1.mlp.experts.0.gate_proj, "
                               "model.layers.1.mlp.experts.0.down_proj): vLLM's "
                               "compressed-tensors MoE kernels (WNA16 Marlin MoE) take sym "
                               "weights only");
  // Loadable but not on Marlin: notes, warnings under --target vllm, nothing under any.
  const LoaderRulesInput g256 = Llama("compressed-tensors", IntConfig(4, Scheme::kSym, 256));
  const std::vector<EngineVerdict> v = CheckLoaders(g256);
  EXPECT_TRUE(Verdict(v, "vLLM").loads);
  absl::StatusOr<std::vector<std::string>> w = ApplyLoaderTarget(v, LoaderTarget::kVllm, "x");
  ASSERT_THAT(w.status(), IsOk());
  EXPECT_THAT(*w, Contains(HasSubstr("group size 256 is not one of Marlin's")));
  EXPECT_THAT(*ApplyLoaderTarget(v, LoaderTarget::kAny, "x"), IsEmpty());
  EXPECT_THAT(
      Verdict(CheckLoaders(Llama("compressed-tensors", IntConfig(8, Scheme::kAsym, 128))), "vLLM")
          .notes,
      Contains(HasSubstr("Marlin takes zero points at 4 bits only")));
}

TEST(LoaderRulesTest, AwqKernelsAndGroupSizes) {
  const std::vector<EngineVerdict> g256 =
      CheckLoaders(Llama("awq", IntConfig(4, Scheme::kAsym, 256)));
  EXPECT_EQ(Verdict(g256, "vLLM").kernel, "awq (GEMM kernel, float16 activations only)");
  const std::vector<EngineVerdict> channel =
      CheckLoaders(Llama("awq", IntConfig(4, Scheme::kAsym, -1)));
  EXPECT_THAT(Verdict(channel, "vLLM").notes,
              Contains(HasSubstr("group_size -1 runs on awq_marlin only")));
}

TEST(LoaderRulesTest, MarlinShapeNotesNameTheLayers) {
  LoaderRulesInput in = Llama("gptq", IntConfig(4, Scheme::kSym, 128));
  in.layers[1].out_features = 1000;  // k_proj
  EXPECT_THAT(Verdict(CheckLoaders(in), "vLLM").notes,
              ElementsAre(AllOf(HasSubstr("layer model.layers.0.self_attn.k_proj: Marlin needs "
                                          "out_features divisible by 64"))));
}

TEST(LoaderRulesTest, IncFilesIncItselfMisreadsAreWarnedNamingVersions) {
  LoaderRulesInput in = Llama("inc", IntConfig(8, Scheme::kAsym, 128));
  in.layers[3].config.dtype = QuantDtype::kFp4E2M1;
  in.layers[3].config.bits = 4;
  const std::vector<EngineVerdict> v = CheckLoaders(in);
  absl::StatusOr<std::vector<std::string>> w = ApplyLoaderTarget(v, LoaderTarget::kAny, "inc");
  ASSERT_THAT(w.status(), IsOk());
  EXPECT_THAT(
      *w, Contains(AllOf(HasSubstr("Intel Neural Compressor: 6 layers (first "
                                   "model.layers.0.self_attn.q_proj"),
                         HasSubstr("neural-compressor 2.x and 3.x"), HasSubstr("256 steps off"))));
  EXPECT_THAT(*w, Contains(AllOf(HasSubstr("layer model.layers.0.self_attn.o_proj"),
                                 HasSubstr("neural-compressor 3.x reads fp4_e2m1"))));
  EXPECT_EQ(w->size(), 2u);  // engines without an INC loader are not warned about
  EXPECT_FALSE(Verdict(v, "vLLM").has_loader);
  EXPECT_THAT(ApplyLoaderTarget(v, LoaderTarget::kVllm, "inc").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("vLLM has no loader for INC's packed layout")));
  EXPECT_TRUE(Verdict(CheckLoaders(Llama("inc", IntConfig(4, Scheme::kAsym, 128))),
                      "Intel Neural Compressor")
                  .loads);
}

TEST(LoaderRulesTest, TargetNames) {
  for (LoaderTarget t : {LoaderTarget::kAny, LoaderTarget::kVllm, LoaderTarget::kTransformers}) {
    absl::StatusOr<LoaderTarget> parsed = ParseLoaderTarget(LoaderTargetName(t));
    ASSERT_THAT(parsed.status(), IsOk());
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_THAT(ParseLoaderTarget("sglang").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--target must be any, vllm or transformers, got \"sglang\"")));
}

}  // namespace
}  // namespace rtnq
