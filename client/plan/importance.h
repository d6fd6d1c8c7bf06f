// Importance weights for the plan's error: per input column from a llama.cpp importance matrix
// (GGUF tensor names mapped to Hugging Face names), or per element from a sensitivity
// checkpoint (one tensor of the same name and shape per weight: squared gradients, Adam's second
// moment, ...). Weighted error = sum(importance * (w - q)^2).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "client/plan/imatrix.h"
#include "core/column_errors.h"
#include "core/io/safetensors.h"
#include "core/quantize.h"

namespace rtnq::client {

/// One tensor's weights.
struct TensorImportance {
  /// Per input column and slice: slices * shape.back() values laid out as ColumnSquaredErrors'
  /// sums; empty for none or for per-element weights.
  std::vector<float> columns;
  /// Per element (sensitivity): borrowed from the open sensitivity checkpoint.
  std::optional<TensorInput> elements;
  /// Where the weights came from ("blk.3.attn_q.weight", "blk.3.ffn_up_exps.weight[7]", ...).
  std::string source;
};

/// sum_i columns[i] * sums[i] (or sum_i sums[i] without column weights), in index order, in
/// double: all-ones weights give exactly the unweighted sum. `sums` come from
/// ColumnSquaredErrors with the tensor's ErrorSlices (and its element weights, if any).
double WeightedError(const std::vector<double>& sums, const TensorImportance& importance);

/// The llama.cpp name of a Hugging Face tensor ("model.layers.3.self_attn.q_proj.weight" ->
/// "blk.3.attn_q.weight"; per-expert tensors -> the stacked "_exps" entry and the expert
/// index), or nullopt for names without a counterpart. Llama, Mistral, Qwen2/3(-MoE), Mixtral
/// and DeepSeek V2/V3 names; lm_head -> "output.weight".
struct GgufName {
  std::string name;
  std::optional<int64_t> expert;
};
std::optional<GgufName> GgufNameOf(std::string_view hf_tensor_name);

/// A source of importance weights (none, an importance matrix or a sensitivity checkpoint).
class Importance {
 public:
  /// No weights: plain squared error.
  Importance();
  /// Reads an importance matrix (ReadImatrix).
  static absl::StatusOr<Importance> FromImatrix(const std::string& path);
  /// Opens a sensitivity checkpoint (a .safetensors file or a checkpoint directory).
  static absl::StatusOr<Importance> FromSensitivity(const std::string& path);

  Importance(Importance&&) noexcept;
  Importance& operator=(Importance&&) noexcept;
  ~Importance();

  bool weighted() const;
  /// Needs every element of the tensor's weights (cannot be reduced to per-column sums).
  bool per_element() const;
  /// "none", "imatrix FILE (gguf, 224 entries, 100 chunks)" or "sensitivity FILE".
  const std::string& description() const;

  /// The weights of each tensor (in order). An imatrix entry is found by the tensor's own name,
  /// its llama.cpp name, or (q/k/v and gate/up read the same input) a sibling's; its length must
  /// be the tensor's input dimension (times the experts, for stacked entries). Sensitivity
  /// tensors need the same name and shape, a float dtype, and finite values >= 0 (checked here,
  /// which reads them). InvalidArgument naming every unmatched tensor (the first 10 and the
  /// count) and every mismatch.
  absl::StatusOr<std::vector<TensorImportance>> Match(
      const std::vector<const TensorInfo*>& tensors) const;

 private:
  struct State;
  explicit Importance(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rtnq::client
