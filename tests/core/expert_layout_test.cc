#include "core/expert_layout.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

const ExpertLayout kOutIn{false, false};
const ExpertLayout kOutInInterleaved{false, true};
const ExpertLayout kInOut{true, false};
const ExpertLayout kInOutInterleaved{true, true};

TEST(ExpertLayout, NamesRoundTrip) {
  for (ExpertLayout l : {kOutIn, kOutInInterleaved, kInOut, kInOutInterleaved}) {
    absl::StatusOr<ExpertLayout> p = ParseExpertLayout(ExpertLayoutName(l));
    ASSERT_THAT(p, IsOk());
    EXPECT_EQ(*p, l);
  }
  EXPECT_EQ(ExpertLayoutName(kInOutInterleaved), "in-out-interleaved");
  EXPECT_THAT(ParseExpertLayout("fused"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--expert-layout"), HasSubstr("\"fused\""))));
}

TEST(ExpertLayout, FromConfig) {
  auto layout = [](const char* json) {
    return ExpertLayoutFromConfig(nlohmann::ordered_json::parse(json));
  };
  EXPECT_EQ(layout(R"({"model_type": "gpt_oss"})"), kInOutInterleaved);
  EXPECT_EQ(layout(R"({"model_type": "qwen3_moe"})"), kOutIn);
  EXPECT_EQ(layout(R"({"model_type": "deepseek_v3"})"), kOutIn);
  EXPECT_EQ(layout(R"({"model_type": "llama4", "text_config": {"model_type": "llama4_text"}})"),
            kInOut);
  EXPECT_EQ(layout(R"({"model_type": "x", "text_config": {"model_type": "llama4_text"}})"), kInOut);
  EXPECT_EQ(layout(R"({"architectures": ["MixtralForCausalLM"]})"), kOutIn);
  EXPECT_EQ(layout(R"({"model_type": "llama"})"), std::nullopt);
  EXPECT_EQ(layout(R"({"model_type": 3, "architectures": "x"})"), std::nullopt);
  EXPECT_EQ(layout("[]"), std::nullopt);

  auto hidden = [](const char* json) {
    return HiddenSizeFromConfig(nlohmann::ordered_json::parse(json));
  };
  EXPECT_EQ(hidden(R"({"hidden_size": 2880})"), 2880);
  EXPECT_EQ(hidden(R"({"text_config": {"hidden_size": 5120}})"), 5120);
  EXPECT_EQ(hidden(R"({"hidden_size": "big"})"), std::nullopt);
  EXPECT_EQ(hidden(R"({"hidden_size": 0})"), std::nullopt);
}

TEST(ExpertLayout, StackedNames) {
  auto se = StackedExpertsOf("model.layers.3.mlp.experts.gate_up_proj");
  ASSERT_TRUE(se.has_value());
  EXPECT_EQ(se->prefix, "model.layers.3.mlp.experts");
  EXPECT_EQ(se->proj, ExpertProj::kGateUp);
  se = StackedExpertsOf("language_model.model.layers.0.feed_forward.experts.down_proj.weight");
  ASSERT_TRUE(se.has_value());
  EXPECT_EQ(se->proj, ExpertProj::kDown);
  EXPECT_EQ(StackedExpertsOf("experts.up_proj")->proj, ExpertProj::kUp);
  for (const char* n :
       {"model.layers.0.mlp.experts.3.up_proj.weight", "model.layers.0.mlp.up_proj",
        "model.layers.0.mlp.experts.gate_up_proj_bias", "mlp.myexperts.down_proj", "down_proj"}) {
    EXPECT_FALSE(StackedExpertsOf(n).has_value()) << n;
  }
}

TEST(ExpertLayout, SlicesPerLayout) {
  const std::string n = "m.layers.0.mlp.experts.gate_up_proj";
  absl::StatusOr<std::vector<ExpertSlice>> s = PlanExpertSlices(n, {2, 8, 6}, kOutIn, 6);
  ASSERT_THAT(s, IsOk());
  ASSERT_EQ(s->size(), 4u);
  EXPECT_EQ((*s)[0].layer, "m.layers.0.mlp.experts.0.gate_proj");
  EXPECT_EQ((*s)[1].layer, "m.layers.0.mlp.experts.0.up_proj");
  EXPECT_EQ((*s)[3].layer, "m.layers.0.mlp.experts.1.up_proj");
  EXPECT_EQ((*s)[1].out, 4);
  EXPECT_EQ((*s)[1].in, 6);
  EXPECT_EQ((*s)[1].offset, 4);
  s = PlanExpertSlices(n, {2, 6, 8}, kInOutInterleaved, 6);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ((*s)[1].offset, 1);
  EXPECT_EQ((*s)[1].stride, 2);
  EXPECT_EQ((*s)[1].out, 4);
  EXPECT_EQ((*s)[1].in, 6);
  s = PlanExpertSlices("m.experts.down_proj.weight", {3, 6, 4}, kInOut, 4);
  ASSERT_THAT(s, IsOk());
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ((*s)[2].layer, "m.experts.2.down_proj");
  EXPECT_EQ((*s)[2].out, 4);
  EXPECT_EQ((*s)[2].in, 6);
}

TEST(ExpertLayout, SliceErrorsNameTheTensorAndTheFlag) {
  const auto flag = HasSubstr("--expert-layout");
  const std::string n = "m.experts.gate_up_proj";
  EXPECT_THAT(
      PlanExpertSlices(n, {4, 128, 64}, kOutIn, 128),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"m.experts.gate_up_proj\" [4, 128, 64] as out-in"),
                     HasSubstr("input dimension is 64 but config.json hidden_size is 128"), flag)));
  EXPECT_THAT(PlanExpertSlices(n, {4, 7, 64}, kOutIn, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("odd"), flag)));
  EXPECT_THAT(PlanExpertSlices(n, {4, 128}, kOutIn, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("3-D"), flag)));
  EXPECT_THAT(PlanExpertSlices(n, {0, 8, 8}, kOutIn, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not empty")));
  EXPECT_THAT(PlanExpertSlices("m.conv.weight", {4, 8, 8}, kOutIn, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a stacked expert")));
  EXPECT_THAT(PlanExpertSlices("m.experts.down_proj", {4, 64, 32}, kInOut, 64),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("output dimension is 32 but config.json hidden_size is 64")));
}

// What each layout means, written as the frameworks index it: W[e, rows, cols] with the gate/up
// halves or the even/odd positions of the fused dim, and [E, in, out] read transposed.
int32_t Expected(const std::vector<int32_t>& w, int64_t a, int64_t b, ExpertLayout l, int64_t e,
                 bool up, int64_t o, int64_t i) {
  const int64_t fused = l.transposed ? b : a;
  const int64_t f = l.interleaved ? 2 * o + (up ? 1 : 0) : (up ? fused / 2 : 0) + o;
  return l.transposed ? w[(e * a + i) * b + f] : w[(e * a + f) * b + i];
}

TEST(ExpertLayout, GatherMatchesTheFrameworksIndexingAndScatterInvertsIt) {
  for (ExpertLayout l : {kOutIn, kOutInInterleaved, kInOut, kInOutInterleaved}) {
    SCOPED_TRACE(ExpertLayoutName(l));
    // Odd sizes and more than one 32-element tile in both directions.
    const int64_t E = 3, I = 37, H = 45;
    const std::vector<int64_t> shape =
        l.transposed ? std::vector<int64_t>{E, H, 2 * I} : std::vector<int64_t>{E, 2 * I, H};
    std::vector<int32_t> w(E * 2 * I * H);
    for (size_t k = 0; k < w.size(); ++k) w[k] = static_cast<int32_t>(k * 7 + 1);
    absl::StatusOr<std::vector<ExpertSlice>> slices =
        PlanExpertSlices("x.experts.gate_up_proj", shape, l, H);
    ASSERT_THAT(slices, IsOk());
    ASSERT_EQ(slices->size(), 2u * E);
    std::vector<int32_t> rebuilt(w.size(), 0);
    for (const ExpertSlice& s : *slices) {
      const bool up = s.layer.ends_with("up_proj");
      ASSERT_EQ(s.out, I);
      ASSERT_EQ(s.in, H);
      std::vector<int32_t> flat(s.out * s.in);
      GatherExpertSlice(reinterpret_cast<const uint8_t*>(w.data()), shape, 4, l.transposed, s,
                        reinterpret_cast<uint8_t*>(flat.data()));
      for (int64_t o = 0; o < s.out; ++o) {
        for (int64_t i = 0; i < s.in; ++i) {
          ASSERT_EQ(flat[o * s.in + i], Expected(w, shape[1], shape[2], l, s.expert, up, o, i))
              << s.layer << " (" << o << ", " << i << ")";
        }
      }
      ScatterExpertSlice(reinterpret_cast<const uint8_t*>(flat.data()), shape, 4, l.transposed, s,
                         reinterpret_cast<uint8_t*>(rebuilt.data()));
    }
    EXPECT_EQ(rebuilt, w);  // the slices cover every element exactly once
  }
}

TEST(ExpertLayout, Routers) {
  for (const char* n :
       {"model.layers.0.mlp.gate.weight", "model.layers.0.block_sparse_moe.gate.weight",
        "model.layers.0.mlp.router.weight",
        "language_model.model.layers.1.feed_forward.router.weight",
        "model.layers.0.mlp.shared_expert_gate.weight",
        "transformer.blocks.0.ffn.router.layer.weight"}) {
    EXPECT_TRUE(IsMoeRouter(n)) << n;
  }
  for (const char* n :
       {"model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.experts.0.w1.weight",
        "model.layers.0.mlp.shared_expert.gate_proj.weight", "gates.weight",
        "model.layers.0.self_attn.q_proj.weight"}) {
    EXPECT_FALSE(IsMoeRouter(n)) << n;
  }
}

}  // namespace
}  // namespace rtnq
