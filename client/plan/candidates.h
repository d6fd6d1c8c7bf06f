// The configs `rtnq plan` chooses from (--candidates): short forms such as "int4:g128:sym",
// "keep" for leaving a tensor unquantized, inline JSON configs and JSON files.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/quant_config.h"

namespace rtnq::client {

/// Most candidates one plan measures (each costs a quantization of every tensor).
inline constexpr size_t kMaxCandidates = 64;

/// One choice a tensor can get.
struct Candidate {
  std::string label;                  ///< as printed in tables and reports; unique
  std::optional<QuantConfig> config;  ///< nullopt: leave the tensor unquantized
  bool keep() const { return !config.has_value(); }
};

/// Parses a candidate list. Grammar (items separated by commas; commas inside {} or [] and
/// inside strings belong to the item):
///
///   ITEM := "keep" | "fp16" | "bf16" | "fp32"   unquantized, stored as in the input (no cast)
///         | TYPE (":" OPTION)*                  e.g. int4:g128:sym, nf4:g64, int8:row:sym:mse
///         | "{...}"                              a JSON config object: INC's keys as in
///                                                `rtnq quantize --config` (no weight_config),
///                                                plus an optional "name" used as its label
///         | "@" PATH                             a JSON file holding one such object, or an
///                                                array of objects and short-form strings
///   TYPE := int2 .. int8 | nf4 | fp4 | fp4_e2m1
///   OPTION := gN (group size N >= 1) | g-1 | row (one group per row) | sym | asym (int only)
///           | mse (MSE clip search) | fullrange (int sym) | qF (quantile F in (0, 1])
///
/// Options not given take the contract's defaults (group size 32, asym). A JSON object's label
/// is its "name" or its config summary. Errors are InvalidArgument naming the item: unknown
/// type or option, an option given twice, an invalid config (ValidateConfig's message), a
/// candidate that duplicates an earlier one (same config, or keep twice), an empty list, or more
/// than kMaxCandidates.
absl::StatusOr<std::vector<Candidate>> ParseCandidates(std::string_view list);

}  // namespace rtnq::client
