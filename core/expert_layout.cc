#include "core/expert_layout.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/io/safetensors_header.h"
#include "core/layout/output_plan.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

constexpr ExpertLayout kOutIn{false, false};
constexpr ExpertLayout kInOut{true, false};
constexpr ExpertLayout kInOutInterleaved{true, true};

struct FamilyLayout {
  const char* model_type;
  const char* architecture;  // the usual architectures[0], for configs without model_type
  ExpertLayout layout;
};

// transformers' conversion_mapping fuses these families' per-expert checkpoints into
// [E, 2I, H] gate_up (gate rows first) and [E, H, I] down on load; state dicts dumped from such
// models carry the fused names in that orientation. GPT-OSS and Llama-4 store [E, in, out].
constexpr FamilyLayout kFamilies[] = {
    {"gpt_oss", "GptOssForCausalLM", kInOutInterleaved},
    {"llama4", "Llama4ForConditionalGeneration", kInOut},
    {"llama4_text", "Llama4ForCausalLM", kInOut},
    {"mixtral", "MixtralForCausalLM", kOutIn},
    {"minimax", "MiniMaxForCausalLM", kOutIn},
    {"qwen2_moe", "Qwen2MoeForCausalLM", kOutIn},
    {"qwen3_moe", "Qwen3MoeForCausalLM", kOutIn},
    {"qwen3_next", "Qwen3NextForCausalLM", kOutIn},
    {"qwen3_vl_moe", "Qwen3VLMoeForConditionalGeneration", kOutIn},
    {"qwen3_omni_moe", "Qwen3OmniMoeForConditionalGeneration", kOutIn},
    {"deepseek_v2", "DeepseekV2ForCausalLM", kOutIn},
    {"deepseek_v3", "DeepseekV3ForCausalLM", kOutIn},
    {"dots1", "Dots1ForCausalLM", kOutIn},
    {"ernie4_5_moe", "Ernie4_5_MoeForCausalLM", kOutIn},
    {"glm4_moe", "Glm4MoeForCausalLM", kOutIn},
    {"glm4v_moe", "Glm4vMoeForConditionalGeneration", kOutIn},
    {"hunyuan_v1_moe", "HunYuanMoEV1ForCausalLM", kOutIn},
    {"longcat_flash", "LongcatFlashForCausalLM", kOutIn},
    {"flex_olmo", "FlexOlmoForCausalLM", kOutIn},
    {"olmoe", "OlmoeForCausalLM", kOutIn},
    {"phimoe", "PhimoeForCausalLM", kOutIn},
    {"jamba", "JambaForCausalLM", kOutIn},
    {"lfm2_moe", "Lfm2MoeForCausalLM", kOutIn},
};

std::string StringKey(const nlohmann::ordered_json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

const char* ProjName(ExpertProj p) {
  switch (p) {
    case ExpertProj::kGateUp:
      return "gate_up_proj";
    case ExpertProj::kGate:
      return "gate_proj";
    case ExpertProj::kUp:
      return "up_proj";
    case ExpertProj::kDown:
      break;
  }
  return "down_proj";
}

// Copies between a stacked tensor and a [out, in] buffer; `to_slice` picks the direction. The
// transposed layout is walked in tiles so both sides stay in cache.
void CopySlice(uint8_t* stacked, uint8_t* flat, const std::vector<int64_t>& shape, int es,
               bool transposed, const ExpertSlice& s, bool to_slice) {
  const int64_t a = shape[1], b = shape[2];
  uint8_t* base = stacked + s.expert * a * b * es;
  auto move = [&](int64_t o, int64_t i, uint8_t* p) {
    uint8_t* q = flat + (o * s.in + i) * es;
    if (to_slice) {
      std::memcpy(q, p, es);
    } else {
      std::memcpy(p, q, es);
    }
  };
  if (!transposed) {
    for (int64_t o = 0; o < s.out; ++o) {
      uint8_t* row = base + (s.offset + o * s.stride) * b * es;
      uint8_t* q = flat + o * s.in * es;
      if (to_slice) {
        std::memcpy(q, row, s.in * es);
      } else {
        std::memcpy(row, q, s.in * es);
      }
    }
    return;
  }
  constexpr int64_t kTile = 32;
  for (int64_t o0 = 0; o0 < s.out; o0 += kTile) {
    const int64_t o1 = std::min(s.out, o0 + kTile);
    for (int64_t i0 = 0; i0 < s.in; i0 += kTile) {
      const int64_t i1 = std::min(s.in, i0 + kTile);
      for (int64_t i = i0; i < i1; ++i) {
        for (int64_t o = o0; o < o1; ++o) move(o, i, base + (i * b + s.offset + o * s.stride) * es);
      }
    }
  }
}

}  // namespace

std::string ExpertLayoutName(ExpertLayout l) {
  return absl::StrCat(l.transposed ? "in-out" : "out-in", l.interleaved ? "-interleaved" : "");
}

absl::StatusOr<ExpertLayout> ParseExpertLayout(std::string_view name) {
  for (bool t : {false, true}) {
    for (bool i : {false, true}) {
      if (ExpertLayoutName({t, i}) == name) return ExpertLayout{t, i};
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--expert-layout must be out-in, in-out, out-in-interleaved or in-out-interleaved, got \"",
      std::string(name), "\""));
}

std::optional<ExpertLayout> ExpertLayoutFromConfig(const nlohmann::ordered_json& config) {
  std::vector<std::string> keys = {StringKey(config, "model_type")};
  if (config.is_object() && config.contains("text_config")) {
    keys.push_back(StringKey(config["text_config"], "model_type"));
  }
  for (const std::string& k : keys) {
    for (const FamilyLayout& f : kFamilies) {
      if (!k.empty() && k == f.model_type) return f.layout;
    }
  }
  if (config.is_object() && config.contains("architectures") &&
      config["architectures"].is_array() && !config["architectures"].empty() &&
      config["architectures"][0].is_string()) {
    const std::string arch = config["architectures"][0].get<std::string>();
    for (const FamilyLayout& f : kFamilies) {
      if (arch == f.architecture) return f.layout;
    }
  }
  return std::nullopt;
}

std::optional<int64_t> HiddenSizeFromConfig(const nlohmann::ordered_json& config) {
  for (const nlohmann::ordered_json* j :
       {&config,
        config.is_object() && config.contains("text_config") ? &config["text_config"] : nullptr}) {
    if (j != nullptr && j->is_object() && j->contains("hidden_size") &&
        (*j)["hidden_size"].is_number_integer() && (*j)["hidden_size"].get<int64_t>() > 0) {
      return (*j)["hidden_size"].get<int64_t>();
    }
  }
  return std::nullopt;
}

std::optional<StackedExperts> StackedExpertsOf(std::string_view tensor_name) {
  const std::string layer = LayerName(tensor_name);
  const size_t dot = layer.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  const std::string prefix = layer.substr(0, dot);
  const std::string last = layer.substr(dot + 1);
  if (prefix != "experts" && !absl::EndsWith(prefix, ".experts")) return std::nullopt;
  for (ExpertProj p :
       {ExpertProj::kGateUp, ExpertProj::kGate, ExpertProj::kUp, ExpertProj::kDown}) {
    if (last == ProjName(p)) return StackedExperts{prefix, p};
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<ExpertSlice>> PlanExpertSlices(std::string_view name,
                                                          const std::vector<int64_t>& shape,
                                                          ExpertLayout layout,
                                                          std::optional<int64_t> hidden_size) {
  auto error = [&](std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", std::string(name), "\" ", ShapeString(shape), " as ",
                     ExpertLayoutName(layout), " experts: ", std::string(what),
                     " (check --expert-layout: out-in, in-out, out-in-interleaved, "
                     "in-out-interleaved)"));
  };
  const std::optional<StackedExperts> se = StackedExpertsOf(name);
  if (!se.has_value()) return error("not a stacked expert tensor name");
  if (shape.size() != 3 || shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0) {
    return error("a stacked expert tensor must be 3-D [experts, a, b] and not empty");
  }
  const int64_t experts = shape[0];
  const int64_t fused = layout.transposed ? shape[2] : shape[1];
  const int64_t in = layout.transposed ? shape[1] : shape[2];
  if (hidden_size.has_value()) {
    // gate/up read the hidden state; down writes it.
    const bool down = se->proj == ExpertProj::kDown;
    const int64_t want_dim = down ? fused : in;
    if (want_dim != *hidden_size) {
      return error(absl::StrCat("its ", down ? "output" : "input", " dimension is ", want_dim,
                                " but config.json hidden_size is ", *hidden_size));
    }
  }
  std::vector<ExpertSlice> slices;
  const bool gate_up = se->proj == ExpertProj::kGateUp;
  if (gate_up && fused % 2 != 0) {
    return error(absl::StrCat("the fused gate/up dimension ", fused, " is odd"));
  }
  for (int64_t e = 0; e < experts; ++e) {
    const std::string base = absl::StrCat(se->prefix, ".", e, ".");
    if (!gate_up) {
      slices.push_back({base + ProjName(se->proj), e, fused, in, 0, 1});
      continue;
    }
    const int64_t half = fused / 2;
    const int64_t stride = layout.interleaved ? 2 : 1;
    slices.push_back({base + "gate_proj", e, half, in, 0, stride});
    slices.push_back({base + "up_proj", e, half, in, layout.interleaved ? 1 : half, stride});
  }
  return slices;
}

void GatherExpertSlice(const uint8_t* stacked, const std::vector<int64_t>& shape, int elem_size,
                       bool transposed, const ExpertSlice& slice, uint8_t* out) {
  CopySlice(const_cast<uint8_t*>(stacked), out, shape, elem_size, transposed, slice, true);
}

void ScatterExpertSlice(const uint8_t* in, const std::vector<int64_t>& shape, int elem_size,
                        bool transposed, const ExpertSlice& slice, uint8_t* stacked) {
  CopySlice(stacked, const_cast<uint8_t*>(in), shape, elem_size, transposed, slice, false);
}

bool IsMoeRouter(std::string_view tensor_name) {
  const std::string layer = LayerName(tensor_name);
  const std::vector<std::string> parts = absl::StrSplit(layer, '.');
  if (parts.empty()) return false;
  const std::string& last = parts.back();
  if (last == "gate" || last == "shared_expert_gate") return true;
  return std::find(parts.begin(), parts.end(), "router") != parts.end();
}

}  // namespace rtnq
