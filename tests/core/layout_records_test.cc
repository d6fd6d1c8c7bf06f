// config.json records of the compressed-tensors and AWQ layouts, compared with reference configs
// written here from each format's own source, and the records each refuses to write.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/layout/awq_config.h"
#include "core/layout/compressed_tensors_config.h"
#include "tests/testing/quant_testing.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IntConfig;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

std::vector<QuantizedLayer> Llama(const QuantConfig& cfg) {
  std::vector<QuantizedLayer> layers;
  for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                        "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
    layers.push_back({std::string("model.layers.0.") + m, cfg, 0, 0});
  }
  return layers;
}

// The keys of an object, in any order.
std::vector<std::string> Keys(const Json& j) {
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Key order aside (compressed-tensors writes sorted keys).
nlohmann::json Unordered(const Json& j) { return nlohmann::json::parse(j.dump()); }

// What compressed-tensors itself writes for an int4 asym group-128 model: ModelCompressor.
// update_config (compressed-tensors src/compressed_tensors/compressors/model_compressors/
// model_compressor.py, tag 0.18.0) stores {version, quant_method, sparsity_config: {},
// transform_config: {}} plus QuantizationConfig.model_dump() (quantization/quant_config.py:
// config_groups, quant_method, kv_cache_scheme, format, quantization_status,
// global_compression_ratio, ignore); each group is a QuantizationScheme (quant_scheme.py:
// targets, weights, input_activations, output_activations, format) whose weights are
// QuantizationArgs (quant_args.py). Values as llm-compressor's W4A16 asym recipe leaves them.
const char kCompressedTensorsReference[] = R"json({
  "config_groups": {
    "group_0": {
      "format": "pack-quantized",
      "input_activations": null,
      "output_activations": null,
      "targets": ["Linear"],
      "weights": {
        "actorder": null, "block_structure": null, "dynamic": false, "group_size": 128,
        "num_bits": 4, "observer": "minmax", "observer_kwargs": {}, "scale_dtype": null,
        "strategy": "group", "symmetric": false, "type": "int", "zp_dtype": "torch.int8"
      }
    }
  },
  "format": "pack-quantized",
  "global_compression_ratio": null,
  "ignore": ["lm_head"],
  "kv_cache_scheme": null,
  "quant_method": "compressed-tensors",
  "quantization_status": "compressed",
  "sparsity_config": {},
  "transform_config": {},
  "version": "0.18.0"
})json";

TEST(CompressedTensorsRecordTest, MatchesTheReferenceConfig) {
  const QuantConfig cfg = IntConfig(4, Scheme::kAsym, 128);
  absl::StatusOr<Json> got = CompressedTensorsQuantizationConfig(Llama(cfg), {"lm_head"});
  ASSERT_THAT(got.status(), IsOk());
  Json want = Json::parse(kCompressedTensorsReference);
  // Deliberate differences, each a key older readers refuse or a claim rtnq cannot make:
  // "version" names the compressed-tensors release that wrote the file; scale_dtype/zp_dtype
  // (0.13+) and a group's own "format" are unknown to compressed-tensors 0.11-0.12, whose
  // QuantizationArgs refuse extra keys (the top-level format is every group's default).
  want.erase("version");
  Json& group = want["config_groups"]["group_0"];
  group.erase("format");
  group["weights"].erase("scale_dtype");
  group["weights"].erase("zp_dtype");
  EXPECT_EQ(Keys(*got), Keys(want));
  for (const char* key :
       {"format", "global_compression_ratio", "ignore", "kv_cache_scheme", "quant_method",
        "quantization_status", "sparsity_config", "transform_config"}) {
    EXPECT_EQ((*got)[key], want[key]) << key;
  }
  ASSERT_EQ(Keys((*got)["config_groups"]), std::vector<std::string>{"group_0"});
  const Json& g = (*got)["config_groups"]["group_0"];
  EXPECT_EQ(Keys(g), Keys(group));
  EXPECT_EQ(Keys(g["weights"]), Keys(group["weights"]));
  Json weights = g["weights"];
  // rtnq's scales are RTN's (Intel Neural Compressor's), not an observer's: it names none.
  EXPECT_EQ(weights["observer"], nullptr);
  weights["observer"] = "minmax";
  EXPECT_EQ(Unordered(weights), Unordered(group["weights"]));
  // Exact module names instead of the class "Linear" (vLLM matches a class before the names of a
  // fused layer's shards, so per-layer groups must never mix with a class target).
  EXPECT_EQ(g["targets"], Json(LayerNames(Llama(cfg))));
  EXPECT_EQ(g["input_activations"], nullptr);
  EXPECT_EQ(g["output_activations"], nullptr);
}

TEST(CompressedTensorsRecordTest, OneGroupPerDistinctStoredConfigAndPerChannelSchemes) {
  std::vector<QuantizedLayer> layers = Llama(IntConfig(4, Scheme::kAsym, 128));
  layers[3].config = IntConfig(8, Scheme::kSym, -1);  // o_proj
  layers[6].config = IntConfig(8, Scheme::kSym, -1);  // down_proj
  layers[6].config.quantile = 0.9;                    // not part of the stored form: same group
  absl::StatusOr<Json> got = CompressedTensorsQuantizationConfig(layers, {});
  ASSERT_THAT(got.status(), IsOk());
  const Json& groups = (*got)["config_groups"];
  ASSERT_EQ(Keys(groups), (std::vector<std::string>{"group_0", "group_1"}));
  EXPECT_EQ(groups["group_0"]["targets"].size(), 5u);
  EXPECT_EQ(groups["group_1"]["targets"],
            Json({"model.layers.0.self_attn.o_proj", "model.layers.0.mlp.down_proj"}));
  EXPECT_EQ(groups["group_1"]["weights"]["strategy"], "channel");
  EXPECT_EQ(groups["group_1"]["weights"]["group_size"], nullptr);
  EXPECT_EQ(groups["group_1"]["weights"]["symmetric"], true);
  EXPECT_EQ(groups["group_1"]["weights"]["num_bits"], 8);
  EXPECT_EQ((*got)["ignore"], Json::array());
}

TEST(CompressedTensorsRecordTest, RefusesRecordsItCannotWrite) {
  EXPECT_THAT(CompressedTensorsQuantizationConfig({}, {"lm_head"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no layer is quantized")));
  std::vector<QuantizedLayer> layers = Llama(IntConfig(4, Scheme::kSym, 32));
  EXPECT_THAT(CompressedTensorsQuantizationConfig(layers, {"model.layers.0.mlp.up_proj"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("layer model.layers.0.mlp.up_proj is listed twice")));
  layers[1].config.bits = 3;
  EXPECT_THAT(CompressedTensorsQuantizationConfig(layers, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("model.layers.0.self_attn.k_proj"),
                             HasSubstr("bits 2, 4 or 8 only"))));
}

// AutoAWQ's AwqConfig.to_transformers_dict (casper-hansen/AutoAWQ awq/models/_config.py), what
// save_quantized puts in config.json for a 4-bit group-128 GEMM model with nothing excluded.
const char kAwqReference[] = R"json({
  "quant_method": "awq",
  "zero_point": true,
  "group_size": 128,
  "bits": 4,
  "version": "gemm",
  "modules_to_not_convert": null
})json";

TEST(AwqRecordTest, IsTheReferenceConfig) {
  absl::StatusOr<Json> got = AwqQuantizationConfig(Llama(IntConfig(4, Scheme::kAsym, 128)), {});
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_EQ(*got, Json::parse(kAwqReference));  // same keys, values and order
  got = AwqQuantizationConfig(Llama(IntConfig(4, Scheme::kAsym, 64)),
                              {"lm_head", "model.embed_tokens"});
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_EQ((*got)["group_size"], 64);
  EXPECT_EQ((*got)["modules_to_not_convert"], Json({"lm_head", "model.embed_tokens"}));
}

TEST(AwqRecordTest, RefusesWhatOneAwqConfigCannotSay) {
  std::vector<QuantizedLayer> layers = Llama(IntConfig(4, Scheme::kAsym, 128));
  layers[2].config.group_size = 64;
  EXPECT_THAT(AwqQuantizationConfig(layers, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("model.layers.0.self_attn.v_proj has group_size 64"),
                             HasSubstr("model.layers.0.self_attn.q_proj has 128"),
                             HasSubstr("one group size for every layer"))));
  layers[2].config = IntConfig(4, Scheme::kSym, 128);
  EXPECT_THAT(AwqQuantizationConfig(layers, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("model.layers.0.self_attn.v_proj"),
                             HasSubstr("4-bit asym weights only"))));
  // A skipped router whose name is part of a quantized module's name would skip that one too.
  layers = Llama(IntConfig(4, Scheme::kAsym, 128));
  EXPECT_THAT(AwqQuantizationConfig(layers, {"model.layers.0.mlp.gate"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("layer model.layers.0.mlp.gate is left unquantized"),
                             HasSubstr("part of quantized layer model.layers.0.mlp.gate_proj"))));
  EXPECT_THAT(AwqQuantizationConfig({}, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no layer is quantized")));
}

}  // namespace
}  // namespace rtnq
