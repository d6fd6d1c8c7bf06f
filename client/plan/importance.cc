#include "client/plan/importance.h"

#include <cmath>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/checkpoint_util.h"
#include "core/io/sharded_checkpoint.h"
#include "core/layout/output_plan.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

// Unmatched tensors named in one error.
constexpr size_t kNamedInError = 10;

bool IsNumber(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// Hugging Face module names -> llama.cpp's (gguf-py's TENSOR_NAMES).
const std::map<std::string, std::string>& AttentionNames() {
  static const auto* m = new std::map<std::string, std::string>{
      {"q_proj", "attn_q"},       {"k_proj", "attn_k"},
      {"v_proj", "attn_v"},       {"o_proj", "attn_output"},
      {"q_a_proj", "attn_q_a"},   {"q_b_proj", "attn_q_b"},
      {"kv_b_proj", "attn_kv_b"}, {"kv_a_proj_with_mqa", "attn_kv_a_mqa"}};
  return *m;
}
const std::map<std::string, std::string>& MlpNames() {
  static const auto* m = new std::map<std::string, std::string>{
      {"gate_proj", "ffn_gate"},  {"up_proj", "ffn_up"},
      {"down_proj", "ffn_down"},  {"gate", "ffn_gate_inp"},
      {"router", "ffn_gate_inp"}, {"shared_expert_gate", "ffn_gate_inp_shexp"}};
  return *m;
}
const std::map<std::string, std::string>& ExpertNames() {
  static const auto* m = new std::map<std::string, std::string>{
      {"gate_proj", "ffn_gate_exps"},      {"w1", "ffn_gate_exps"},
      {"up_proj", "ffn_up_exps"},          {"w3", "ffn_up_exps"},
      {"down_proj", "ffn_down_exps"},      {"w2", "ffn_down_exps"},
      {"gate_up_proj", "ffn_gate_up_exps"}};
  return *m;
}

std::optional<std::string> Lookup(const std::map<std::string, std::string>& m,
                                  const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

// Tensors that read the same input as `gguf` (its importance is theirs too).
std::vector<std::string> Siblings(const std::string& gguf) {
  static const std::vector<std::vector<std::string>> kSameInput = {
      {"attn_q", "attn_k", "attn_v"},
      {"ffn_gate", "ffn_up"},
      {"ffn_gate_exps", "ffn_up_exps", "ffn_gate_up_exps"},
      {"ffn_gate_shexp", "ffn_up_shexp"}};
  std::vector<std::string> out;
  const std::vector<std::string> parts = absl::StrSplit(gguf, '.');
  if (parts.size() != 4) return out;  // blk.N.X.weight
  for (const auto& family : kSameInput) {
    if (std::find(family.begin(), family.end(), parts[2]) == family.end()) continue;
    for (const std::string& s : family) {
      if (s != parts[2]) out.push_back(absl::StrCat(parts[0], ".", parts[1], ".", s, ".weight"));
    }
  }
  return out;
}

std::string NameList(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < std::min(names.size(), kNamedInError); ++i) {
    absl::StrAppend(&s, i ? ", \"" : "\"", names[i], "\"");
  }
  if (names.size() > kNamedInError) absl::StrAppend(&s, ", ... (", names.size(), " in all)");
  return s;
}

}  // namespace

double WeightedError(const std::vector<double>& sums, const TensorImportance& importance) {
  double total = 0;
  if (importance.columns.empty()) {
    for (double s : sums) total += s;
    return total;
  }
  for (size_t i = 0; i < sums.size(); ++i) {
    total += static_cast<double>(importance.columns[i]) * sums[i];
  }
  return total;
}

std::optional<GgufName> GgufNameOf(std::string_view hf_tensor_name) {
  const std::string layer = LayerName(hf_tensor_name);
  if (layer == "lm_head") return GgufName{"output.weight", std::nullopt};
  const std::vector<std::string> parts = absl::StrSplit(layer, '.');
  size_t at = 0;
  while (at + 1 < parts.size() && !(parts[at] == "layers" && IsNumber(parts[at + 1]))) ++at;
  if (at + 1 >= parts.size()) return std::nullopt;
  const std::vector<std::string> rest(parts.begin() + at + 2, parts.end());
  auto blk = [&](const std::string& x) {
    return absl::StrCat("blk.", parts[at + 1], ".", x, ".weight");
  };
  const bool mlp = !rest.empty() &&
                   (rest[0] == "mlp" || rest[0] == "feed_forward" || rest[0] == "block_sparse_moe");
  std::optional<std::string> x;
  if (rest.size() == 2 && (rest[0] == "self_attn" || rest[0] == "attention")) {
    x = Lookup(AttentionNames(), rest[1]);
  } else if (rest.size() == 2 && mlp) {
    x = Lookup(MlpNames(), rest[1]);
  } else if (rest.size() == 3 && mlp &&
             (rest[1] == "shared_expert" || rest[1] == "shared_experts")) {
    if (auto m = Lookup(MlpNames(), rest[2]); m.has_value() && rest[2] != "gate") x = *m + "_shexp";
  } else if (rest.size() == 3 && mlp && rest[1] == "experts") {
    x = Lookup(ExpertNames(), rest[2]);  // stacked [E, out, in]: the whole entry
  } else if (rest.size() == 4 && mlp && rest[1] == "experts" && IsNumber(rest[2])) {
    if (auto e = Lookup(ExpertNames(), rest[3]); e.has_value() && rest[3] != "gate_up_proj") {
      int64_t expert = 0;
      if (!absl::SimpleAtoi(rest[2], &expert)) return std::nullopt;
      return GgufName{blk(*e), expert};
    }
  }
  if (!x.has_value()) return std::nullopt;
  return GgufName{blk(*x), std::nullopt};
}

struct Importance::State {
  std::string description = "none";
  std::optional<Imatrix> imatrix;
  std::optional<ShardedCheckpoint> sensitivity;
};

Importance::Importance() : state_(std::make_unique<State>()) {}
Importance::Importance(std::unique_ptr<State> state) : state_(std::move(state)) {}
Importance::Importance(Importance&&) noexcept = default;
Importance& Importance::operator=(Importance&&) noexcept = default;
Importance::~Importance() = default;

absl::StatusOr<Importance> Importance::FromImatrix(const std::string& path) {
  auto s = std::make_unique<State>();
  RTNQ_ASSIGN_OR_RETURN(s->imatrix, ReadImatrix(path));
  s->description =
      absl::StrCat("imatrix ", path, " (", s->imatrix->format, ", ", s->imatrix->entries.size(),
                   " entries, ", s->imatrix->chunks, " chunks)");
  return Importance(std::move(s));
}

absl::StatusOr<Importance> Importance::FromSensitivity(const std::string& path) {
  auto s = std::make_unique<State>();
  RTNQ_ASSIGN_OR_RETURN(s->sensitivity, ShardedCheckpoint::Open(path));
  s->description = absl::StrCat("sensitivity ", path);
  return Importance(std::move(s));
}

bool Importance::weighted() const { return state_->imatrix || state_->sensitivity; }
bool Importance::per_element() const { return state_->sensitivity.has_value(); }
const std::string& Importance::description() const { return state_->description; }

absl::StatusOr<std::vector<TensorImportance>> Importance::Match(
    const std::vector<const TensorInfo*>& tensors) const {
  std::vector<TensorImportance> out(tensors.size());
  std::vector<std::string> unmatched;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = *tensors[i];
    if (t.shape.empty()) continue;
    const int64_t n = t.shape.back(), slices = ErrorSlices(t.shape);
    auto mismatch = [&](const std::string& what) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", t.name, "\" (shape ", ShapeString(t.shape), "): ", what));
    };
    if (state_->sensitivity.has_value()) {
      const TensorInfo* s = state_->sensitivity->Find(t.name);
      if (s == nullptr) {
        unmatched.push_back(t.name);
        continue;
      }
      if (s->shape != t.shape || !IsQuantizableFloat(s->dtype)) {
        return mismatch(absl::StrCat("its sensitivity tensor is ", ElemTypeName(s->dtype), " ",
                                     ShapeString(s->shape),
                                     "; it needs the same shape, F32/F16/BF16"));
      }
      RTNQ_ASSIGN_OR_RETURN(const std::vector<float> values, ToFloats(*s));
      for (size_t k = 0; k < values.size(); ++k) {
        if (!std::isfinite(values[k]) || values[k] < 0) {
          return mismatch(absl::StrCat("sensitivity element ", k, " is ", values[k],
                                       " (weights are finite and >= 0)"));
        }
      }
      out[i].elements = TensorInput{s->name, s->dtype, s->shape, s->data};
      out[i].source = s->name;
      continue;
    }
    if (!state_->imatrix.has_value()) continue;
    const auto& entries = state_->imatrix->entries;
    std::vector<std::pair<std::string, std::optional<int64_t>>> names = {{t.name, std::nullopt}};
    if (std::optional<GgufName> g = GgufNameOf(t.name); g.has_value()) {
      names.emplace_back(g->name, g->expert);
      for (const std::string& s : Siblings(g->name)) names.emplace_back(s, g->expert);
    }
    auto found = std::find_if(names.begin(), names.end(),
                              [&](const auto& nm) { return entries.count(nm.first) != 0; });
    if (found == names.end()) {
      unmatched.push_back(t.name);
      continue;
    }
    const ImatrixEntry& e = entries.at(found->first);
    const int64_t total = static_cast<int64_t>(e.values.size());
    TensorImportance& imp = out[i];
    imp.source = found->first;
    if (e.n_per_row != 0 && e.n_per_row != n) {
      return mismatch(absl::StrCat("importance entry \"", found->first, "\" has ", e.n_per_row,
                                   " columns, the tensor's input dimension is ", n));
    }
    if (found->second.has_value()) {  // one expert's slice of a stacked entry
      const int64_t expert = *found->second;
      if (slices != 1 || total % n != 0 || expert >= total / n) {
        return mismatch(absl::StrCat("importance entry \"", found->first, "\" has ", total,
                                     " values, not ", n, " per expert for expert ", expert));
      }
      imp.columns.assign(e.values.begin() + expert * n, e.values.begin() + (expert + 1) * n);
      absl::StrAppend(&imp.source, "[", expert, "]");
    } else if (total == n) {
      for (int64_t k = 0; k < slices; ++k) {
        imp.columns.insert(imp.columns.end(), e.values.begin(), e.values.end());
      }
    } else if (total == slices * n && slices > 1) {
      imp.columns = e.values;
    } else {
      return mismatch(absl::StrCat("importance entry \"", found->first, "\" has ", total,
                                   " values; the tensor needs ", n,
                                   slices > 1 ? absl::StrCat(" or ", slices * n) : ""));
    }
  }
  if (!unmatched.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no importance for ", unmatched.size(), " selected tensors in ",
                     state_->description, ": ", NameList(unmatched),
                     "; leave them out (--exclude) or use an importance file that covers them"));
  }
  return out;
}

}  // namespace rtnq::client
