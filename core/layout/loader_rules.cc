#include "core/layout/loader_rules.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/layout/fused_groups.h"

namespace rtnq {
namespace {

// What a packed layout stores about a layer: dtype, bits, sym, group size.
using StoredKey = std::tuple<QuantDtype, int, bool, int64_t>;

StoredKey KeyOf(const QuantConfig& c) {
  return {c.dtype, c.bits, c.scheme == Scheme::kSym, c.group_size};
}

bool MarlinGroupSize(int64_t gs) { return gs == -1 || gs == 32 || gs == 64 || gs == 128; }

// Layers listed per rule, worded once per rule: "layer a: rule" or "5 layers (first a, b, c): ...".
class RuleHits {
 public:
  void Add(const std::string& rule, const std::string& layer) {
    auto [it, inserted] = index_.emplace(rule, hits_.size());
    if (inserted) hits_.push_back({rule, {}});
    hits_[it->second].second.push_back(layer);
  }
  void AppendTo(std::vector<std::string>& out) const {
    for (const auto& [rule, layers] : hits_) {
      if (layers.size() == 1) {
        out.push_back(absl::StrCat("layer ", layers[0], ": ", rule));
        continue;
      }
      std::vector<std::string> first(layers.begin(),
                                     layers.begin() + std::min<size_t>(3, layers.size()));
      out.push_back(
          absl::StrCat(layers.size(), " layers (first ", absl::StrJoin(first, ", "), "): ", rule));
    }
  }

 private:
  std::map<std::string, size_t> index_;
  std::vector<std::pair<std::string, std::vector<std::string>>> hits_;
};

// Fused modules whose parts differ in what is stored: vLLM (and SGLang) load q/k/v, gate/up and
// one MoE layer's experts as one layer with one config, so the parts must agree.
void FusedProblems(const LoaderRulesInput& in, std::vector<std::string>& problems) {
  struct Part {
    std::string name;
    std::optional<StoredKey> key;  // nullopt: left unquantized
    std::string summary;
  };
  std::map<std::string, std::vector<Part>> groups;
  std::vector<std::string> order;
  const auto add = [&](const std::string& name, std::optional<StoredKey> key, std::string summary) {
    const std::optional<FusedGroup> g = FusedGroupOf(name);
    if (!g.has_value()) return;
    auto [it, inserted] = groups.emplace(g->name, std::vector<Part>{});
    if (inserted) order.push_back(g->name);
    it->second.push_back({name, key, std::move(summary)});
  };
  for (const QuantizedLayer& l : in.layers) add(l.name, KeyOf(l.config), ConfigSummary(l.config));
  for (const std::string& name : in.unquantized) add(name, std::nullopt, "unquantized");
  for (const std::string& fused : order) {
    const std::vector<Part>& parts = groups[fused];
    const bool uniform = std::all_of(parts.begin(), parts.end(),
                                     [&](const Part& p) { return p.key == parts[0].key; });
    if (uniform) continue;
    // The parts by config, in first-seen order, each with up to three names.
    std::vector<std::pair<std::optional<StoredKey>, std::vector<const Part*>>> by_key;
    for (const Part& p : parts) {
      auto it = std::find_if(by_key.begin(), by_key.end(),
                             [&](const auto& b) { return b.first == p.key; });
      if (it == by_key.end()) it = by_key.insert(by_key.end(), {p.key, {}});
      it->second.push_back(&p);
    }
    std::vector<std::string> words;
    for (const auto& [key, members] : by_key) {
      std::vector<std::string> names;
      for (size_t i = 0; i < members.size() && i < 3; ++i) names.push_back(members[i]->name);
      if (members.size() > 3) names.push_back(absl::StrCat("and ", members.size() - 3, " more"));
      words.push_back(absl::StrCat(members[0]->summary, " (", absl::StrJoin(names, ", "), ")"));
    }
    problems.push_back(absl::StrCat("fused module ", fused, ": its ", parts.size(),
                                    " parts are loaded as one layer and need one config; got ",
                                    absl::StrJoin(words, ", ")));
  }
}

// Layers whose shape does not fit Marlin's tiles at tensor parallel size 1.
void MarlinShapeNotes(const LoaderRulesInput& in, std::vector<std::string>& notes) {
  RuleHits hits;
  for (const QuantizedLayer& l : in.layers) {
    if (l.out_features > 0 && (l.out_features % 64 != 0 || l.in_features % 128 != 0)) {
      hits.Add(
          "Marlin needs out_features divisible by 64 and in_features by 128 per tensor-"
          "parallel shard, so these run on another kernel or not at all",
          l.name);
    }
  }
  hits.AppendTo(notes);
}

bool IsExpert(const std::string& name) {
  const std::optional<FusedGroup> g = FusedGroupOf(name);
  return g.has_value() && g->kind == "experts";
}

// A layer differing from the layer-count majority of stored configs: what configs without
// per-layer overrides (transformers' GPTQConfig, AutoGPTQ) load every layer with.
std::optional<StoredKey> MajorityKey(const std::vector<QuantizedLayer>& layers) {
  std::vector<std::pair<StoredKey, int>> counts;
  for (const QuantizedLayer& l : layers) {
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& c) { return c.first == KeyOf(l.config); });
    if (it == counts.end()) {
      counts.emplace_back(KeyOf(l.config), 1);
    } else {
      ++it->second;
    }
  }
  if (counts.empty()) return std::nullopt;
  return std::max_element(counts.begin(), counts.end(),
                          [](const auto& a, const auto& b) { return a.second < b.second; })
      ->first;
}

void OverridesIgnored(const LoaderRulesInput& in, const std::string& engine, RuleHits& hits) {
  const std::optional<StoredKey> global = MajorityKey(in.layers);
  for (const QuantizedLayer& l : in.layers) {
    if (KeyOf(l.config) == *global) continue;
    hits.Add(absl::StrCat(engine, " ignores per-layer overrides (\"dynamic\"), so it would load ",
                          "this layer (", ConfigSummary(l.config),
                          ") with the checkpoint-wide bits/group_size/sym"),
             l.name);
  }
}

std::vector<EngineVerdict> GptqVerdicts(const LoaderRulesInput& in) {
  const bool v2 = in.gptq_format == GptqFormat::kV2;
  const bool any_asym = std::any_of(in.layers.begin(), in.layers.end(),
                                    [](const auto& l) { return l.config.scheme == Scheme::kAsym; });
  EngineVerdict vllm{"vLLM", false, "Marlin (gptq_marlin; auto_gptq in 2026 releases)", {}, {}};
  RuleHits vllm_hits;
  for (const QuantizedLayer& l : in.layers) {
    const QuantConfig& c = l.config;
    if (!((c.bits == 4 || c.bits == 8) && c.scheme == Scheme::kSym)) {
      vllm_hits.Add(absl::StrCat("vLLM's Marlin GPTQ path takes 4- and 8-bit sym only and its ",
                                 "2026 releases refuse ", c.bits, "-bit ", SchemeName(c.scheme),
                                 " GPTQ (2025 releases run it on the slow float16-only gptq ",
                                 "kernel); use the awq or compressed-tensors format for asym"),
                    l.name);
    } else if (!MarlinGroupSize(c.group_size)) {
      vllm_hits.Add(absl::StrCat("Marlin takes group sizes -1, 32, 64 and 128, not ", c.group_size),
                    l.name);
    }
  }
  FusedProblems(in, vllm.problems);
  vllm_hits.AppendTo(vllm.problems);
  MarlinShapeNotes(in, vllm.notes);

  EngineVerdict hf{"transformers",
                   false,
                   "GPTQModel's kernels through optimum (needs the gptqmodel package)",
                   {},
                   {}};
  RuleHits hf_hits;
  OverridesIgnored(in, "transformers' GPTQConfig", hf_hits);
  hf_hits.AppendTo(hf.problems);

  EngineVerdict gptqmodel{"GPTQModel", false, "GPTQModel's (Marlin for 4/8-bit sym)", {}, {}};
  if (any_asym && !v2) {
    gptqmodel.problems.push_back(
        "GPTQModel refuses asym checkpoint_format \"gptq\" (v1) files unless GPTQModel itself "
        "wrote them; write asym GPTQ as gptq_v2");
    hf.problems.push_back(gptqmodel.problems.back());
  }

  EngineVerdict autogptq{
      "AutoGPTQ", false, "AutoGPTQ's CUDA/ExLlama kernels (archived project)", {}, {}};
  if (v2) {
    autogptq.problems.push_back("AutoGPTQ refuses checkpoint_format \"gptq_v2\"");
  }
  RuleHits auto_hits;
  OverridesIgnored(in, "AutoGPTQ", auto_hits);
  auto_hits.AppendTo(autogptq.problems);
  return {vllm, hf, gptqmodel, autogptq};
}

std::vector<EngineVerdict> CompressedTensorsVerdicts(const LoaderRulesInput& in) {
  EngineVerdict vllm{"vLLM",
                     false,
                     "CompressedTensorsWNA16 on Marlin (Machete or ExLlama "
                     "where Marlin cannot)",
                     {},
                     {}};
  RuleHits problems;
  RuleHits notes;
  for (const QuantizedLayer& l : in.layers) {
    const QuantConfig& c = l.config;
    const bool sym = c.scheme == Scheme::kSym;
    if (c.bits != 4 && c.bits != 8) {
      problems.Add(
          absl::StrCat("vLLM loads 4- and 8-bit pack-quantized weights (its 2026 ",
                       "releases add 2..7-bit sym), not ", c.bits, "-bit ", SchemeName(c.scheme)),
          l.name);
      continue;
    }
    if (!sym && IsExpert(l.name)) {
      problems.Add(
          "vLLM's compressed-tensors MoE kernels (WNA16 Marlin MoE) take sym weights "
          "only; use scheme sym for experts, or the awq format",
          l.name);
      continue;
    }
    if (!MarlinGroupSize(c.group_size)) {
      notes.Add(absl::StrCat("group size ", c.group_size, " is not one of Marlin's (-1, 32, 64, ",
                             "128): another mixed-precision kernel must run it"),
                l.name);
    } else if (!sym && c.bits == 8) {
      notes.Add(
          "Marlin takes zero points at 4 bits only: 8-bit asym needs another kernel "
          "(e.g. Machete on Hopper) and may find none",
          l.name);
    }
  }
  FusedProblems(in, vllm.problems);
  problems.AppendTo(vllm.problems);
  notes.AppendTo(vllm.notes);
  MarlinShapeNotes(in, vllm.notes);
  EngineVerdict hf{"transformers",
                   true,
                   "the compressed-tensors library decompresses to the model dtype at load "
                   "(needs the compressed-tensors package)",
                   {},
                   {}};
  return {vllm, hf};
}

std::vector<EngineVerdict> AwqVerdicts(const LoaderRulesInput& in) {
  const int64_t gs = in.layers.empty() ? 128 : in.layers.front().config.group_size;
  EngineVerdict vllm{
      "vLLM",
      false,
      MarlinGroupSize(gs) ? "awq_marlin (Marlin)" : "awq (GEMM kernel, float16 activations only)",
      {},
      {}};
  FusedProblems(in, vllm.problems);
  if (gs == -1) {
    vllm.notes.push_back(
        "group_size -1 runs on awq_marlin only: vLLM's plain awq kernel (GPUs "
        "without Marlin) cannot take it");
  }
  MarlinShapeNotes(in, vllm.notes);
  EngineVerdict hf{"transformers",
                   true,
                   "AutoAWQ's GEMM kernels (needs the autoawq package)",
                   {},
                   {"AutoAWQ is archived; newer transformers releases may drop AWQ loading"}};
  return {vllm, hf};
}

std::vector<EngineVerdict> IncVerdicts(const LoaderRulesInput& in) {
  EngineVerdict inc{"Intel Neural Compressor", false, "WeightOnlyLinear (unpacks at load)", {}, {}};
  RuleHits hits;
  for (const QuantizedLayer& l : in.layers) {
    const QuantConfig& c = l.config;
    if (c.dtype == QuantDtype::kInt && c.bits == 8 && c.scheme == Scheme::kAsym) {
      hits.Add(
          "neural-compressor 2.x and 3.x WeightOnlyLinear.recover() casts q - zp to int8, "
          "so 8-bit asym codes more than 127 from their zero point load 256 steps off "
          "(rtnq verify reads them right)",
          l.name);
    }
    if (c.dtype == QuantDtype::kFp4E2M1) {
      hits.Add(
          "neural-compressor 3.x reads fp4_e2m1 codes with its table normalized to 1, so "
          "these weights load at 1/6 of their value (rtnq verify reads them right)",
          l.name);
    }
  }
  hits.AppendTo(inc.problems);
  const std::string no =
      "has no loader for INC's packed layout; use the gptq, awq or "
      "compressed-tensors format";
  return {{"vLLM", false, "", {absl::StrCat("vLLM ", no)}, {}, false},
          {"transformers", false, "", {absl::StrCat("transformers ", no)}, {}, false},
          inc};
}

}  // namespace

const std::string& LoaderTargetName(LoaderTarget t) {
  static const std::string kNames[] = {"any", "vllm", "transformers"};
  return kNames[static_cast<int>(t)];
}

absl::StatusOr<LoaderTarget> ParseLoaderTarget(std::string_view s) {
  for (LoaderTarget t : {LoaderTarget::kAny, LoaderTarget::kVllm, LoaderTarget::kTransformers}) {
    if (s == LoaderTargetName(t)) return t;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--target must be any, vllm or transformers, got \"", std::string(s), "\""));
}

std::vector<EngineVerdict> CheckLoaders(const LoaderRulesInput& in) {
  std::vector<EngineVerdict> v;
  if (in.layout == "gptq") {
    v = GptqVerdicts(in);
  } else if (in.layout == "compressed-tensors") {
    v = CompressedTensorsVerdicts(in);
  } else if (in.layout == "awq") {
    v = AwqVerdicts(in);
  } else if (in.layout == "inc") {
    v = IncVerdicts(in);
  } else {
    const std::string kernel = "the model's own float layers (fake-quantized weights)";
    v = {{"vLLM", true, kernel, {}, {}}, {"transformers", true, kernel, {}, {}}};
  }
  for (EngineVerdict& e : v) e.loads = e.problems.empty();
  return v;
}

absl::StatusOr<std::vector<std::string>> ApplyLoaderTarget(const std::vector<EngineVerdict>& v,
                                                           LoaderTarget target,
                                                           std::string_view layout) {
  std::vector<std::string> warnings;
  if (target == LoaderTarget::kAny) {
    for (const EngineVerdict& e : v) {
      if (!e.has_loader) continue;
      for (const std::string& p : e.problems) warnings.push_back(absl::StrCat(e.engine, ": ", p));
    }
    return warnings;
  }
  const std::string engine = target == LoaderTarget::kVllm ? "vLLM" : "transformers";
  for (const EngineVerdict& e : v) {
    if (e.engine != engine) continue;
    if (!e.loads) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--target ", LoaderTargetName(target), ": ", engine, " would not load this ",
          std::string(layout), " checkpoint as intended: ", absl::StrJoin(e.problems, "; ")));
    }
    for (const std::string& n : e.notes) warnings.push_back(absl::StrCat(engine, ": ", n));
  }
  return warnings;
}

}  // namespace rtnq
