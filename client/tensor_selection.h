// Which tensors of a checkpoint are quantized, which are left as they are, and why.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/weight_config.h"
#include "core/dtype.h"

namespace rtnq::client {

/// What happens to one tensor.
enum class TensorAction : uint8_t {
  kQuantize,
  kSkip,  ///< a candidate weight left as it is (see reason)
  kCopy,  ///< not a weight matrix (norms, biases, integer tensors): copied unchanged
  /// Left out of the output: the scale of an FP8 weight (consumed by dequantizing it) or a scale
  /// only an FP8 runtime reads (core/io/fp8_source.h).
  kConsume,
};

/// The decision for one tensor and the config that applies to it.
struct TensorDecision {
  TensorAction action = TensorAction::kCopy;
  std::string reason;  ///< why it is skipped or copied
  /// Skipped by a selection rule (name, --exclude) rather than by its config; GPTQ's config
  /// lists only config-skipped layers as "not quantized".
  bool excluded_by_rule = false;
  ResolvedConfig resolved;
};

/// --include / --exclude: tensor names, layer names, globs (`*` crosses dots) or `re:` regexes,
/// matched as weight_config keys are (core/config/weight_config.h).
class TensorSelection {
 public:
  /// Validates the patterns (regexes compile); duplicates are ignored.
  static absl::StatusOr<TensorSelection> Create(std::vector<std::string> include,
                                                std::vector<std::string> exclude);
  TensorSelection();
  TensorSelection(TensorSelection&&) noexcept;
  TensorSelection& operator=(TensorSelection&&) noexcept;
  ~TensorSelection();

  /// The rule. Without --include: 2-D F32/F16/BF16 tensors named "*.weight" are quantized,
  /// except names containing "embed", "lm_head" or "norm" and MoE routers (core/expert_layout.h
  /// IsMoeRouter), unless a weight_config entry names that exact tensor or layer. With --include:
  /// exactly the tensors it matches; a tensor an include names exactly (tensor or layer name) that
  /// cannot be quantized (not 2-D, not a float) is InvalidArgument naming it, pattern matches are
  /// skipped with the reason. Then
  /// --exclude removes tensors, and a config with dtype fp32 skips them.
  /// `stacked_experts`: a 3-D stacked MoE expert tensor (client/expert_plan.h), a weight like a
  /// 2-D "*.weight" although it is 3-D and its name may lack ".weight".
  absl::StatusOr<TensorDecision> Decide(std::string_view name, ElemType dtype,
                                        const std::vector<int64_t>& shape,
                                        const WeightConfigResolver& resolver,
                                        bool stacked_experts = false) const;

  bool has_include() const { return include_ != nullptr; }

 private:
  std::unique_ptr<WeightConfigResolver> include_;  // patterns as weight_config keys
  std::unique_ptr<WeightConfigResolver> exclude_;
};

/// "default", or e.g. `pattern "*.down_proj"`.
std::string DecidedByText(const ResolvedConfig& r);

/// Splits repeated flag values that may themselves be comma lists; empty pieces are dropped.
/// Commas inside a `re:` pattern's braces ({2,3}) are kept.
std::vector<std::string> SplitPatternList(const std::vector<std::string>& values);

}  // namespace rtnq::client
