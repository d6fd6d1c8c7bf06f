// Fused groups as Llama, Mistral, Qwen(-MoE), Mixtral, DeepSeek and Llama-4 checkpoints name
// their tensors: members found, routers and other layers left alone.
#include "core/layout/fused_groups.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace rtnq {
namespace {

using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Optional;

FusedGroup G(std::string name, std::string kind) { return {std::move(name), std::move(kind)}; }

TEST(FusedGroupsTest, RecognisesFusedModules) {
  const std::string p = "model.layers.7.";
  for (const char* m : {"q_proj", "k_proj", "v_proj"}) {
    EXPECT_THAT(FusedGroupOf(p + "self_attn." + m + ".weight"),
                Optional(Eq(G(p + "self_attn.qkv_proj", "qkv"))));
  }
  for (const char* m : {"gate_proj", "up_proj"}) {
    EXPECT_THAT(FusedGroupOf(p + "mlp." + m + ".weight"),
                Optional(Eq(G(p + "mlp.gate_up_proj", "gate_up"))));
    EXPECT_THAT(FusedGroupOf(p + "mlp.shared_expert." + m + ".weight"),  // Qwen2-MoE
                Optional(Eq(G(p + "mlp.shared_expert.gate_up_proj", "gate_up"))));
    EXPECT_THAT(FusedGroupOf(p + "mlp.shared_experts." + m),  // DeepSeek, a layer name
                Optional(Eq(G(p + "mlp.shared_experts.gate_up_proj", "gate_up"))));
  }
  for (const char* m : {"q_a_proj", "kv_a_proj_with_mqa"}) {  // DeepSeek MLA
    EXPECT_THAT(FusedGroupOf(p + "self_attn." + m + ".weight"),
                Optional(Eq(G(p + "self_attn.fused_qkv_a_proj", "qkv_a"))));
  }
  for (const char* e :
       {"mlp.experts.0.gate_proj", "mlp.experts.63.down_proj", "mlp.experts.5.up_proj"}) {
    EXPECT_THAT(FusedGroupOf(p + e + ".weight"), Optional(Eq(G(p + "mlp.experts", "experts"))));
  }
  for (const char* e : {"w1", "w2", "w3"}) {  // Mixtral
    EXPECT_THAT(FusedGroupOf(p + "block_sparse_moe.experts.3." + e + ".weight"),
                Optional(Eq(G(p + "block_sparse_moe.experts", "experts"))));
  }
  // Stacked experts (Llama-4, transformers 5) have no ".weight" suffix.
  EXPECT_THAT(FusedGroupOf("language_model.model.layers.1.feed_forward.experts.gate_up_proj"),
              Optional(Eq(G("language_model.model.layers.1.feed_forward.experts", "experts"))));
  EXPECT_THAT(FusedGroupOf(p + "mlp.experts.down_proj"),
              Optional(Eq(G(p + "mlp.experts", "experts"))));
}

TEST(FusedGroupsTest, LeavesOtherTensorsAlone) {
  for (const char* name :
       {"model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.down_proj.weight",
        "model.layers.0.mlp.gate.weight", "model.layers.0.block_sparse_moe.gate.weight",
        "model.layers.0.mlp.shared_expert_gate.weight", "model.layers.0.self_attn.q_b_proj.weight",
        "model.layers.0.self_attn.kv_b_proj.weight", "model.layers.0.self_attn.qkv_proj.weight",
        "lm_head.weight", "q_proj.weight", "model.embed_tokens.weight",
        "model.layers.0.mlp.experts.0.fc.weight", "experts.0.w1.weight"}) {
    EXPECT_EQ(FusedGroupOf(name), std::nullopt) << name;
  }
}

TEST(FusedGroupsTest, GroupsKeepFirstMemberOrder) {
  const std::vector<std::string> names = {
      "model.layers.0.self_attn.q_proj.weight",  // 0
      "model.layers.0.self_attn.o_proj.weight",  // 1
      "model.layers.0.self_attn.k_proj.weight",  // 2
      "model.layers.0.mlp.up_proj.weight",       // 3
      "model.layers.1.self_attn.v_proj.weight",  // 4 (another layer: another group)
      "model.layers.0.self_attn.v_proj.weight",  // 5
      "model.layers.0.mlp.gate_proj.weight",     // 6
      "model.layers.0.mlp.experts.1.w1.weight",  // 7
      "model.layers.0.mlp.experts.0.w2.weight",  // 8
  };
  EXPECT_THAT(GroupFusedTensors(names),
              ElementsAre(ElementsAre(0, 2, 5), ElementsAre(1), ElementsAre(3, 6), ElementsAre(4),
                          ElementsAre(7, 8)));
  EXPECT_TRUE(GroupFusedTensors({}).empty());
}

}  // namespace
}  // namespace rtnq
