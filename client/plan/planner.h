// `rtnq plan`: measure every selected tensor under every candidate, choose one candidate per
// tensor (one per fused group) exactly for a size or quality budget, and write the choice as a
// session config that `rtnq quantize --config` runs as is, with the bytes that run will write.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/backend.h"
#include "client/plan/candidates.h"
#include "client/plan/importance.h"
#include "client/plan/measure.h"

namespace rtnq::client {

/// What the solver minimises: the total (weighted) squared error, or the size-weighted mean
/// SNR's shortfall (sum over tensors of elements x (300 - min(SNR dB, 300)): maximises the mean
/// SNR weighted by element count; an exact result counts as 300 dB).
enum class PlanObjective : uint8_t { kError, kSnr };

/// Options of MakePlan; the CLI fills them from flags.
struct PlanRequest {
  std::string input;               ///< a .safetensors file or a checkpoint directory
  std::string config_json = "{}";  ///< --config merged with spec flags: carried into the plan
  std::vector<std::string> include, exclude;  ///< as rtnq quantize selects tensors
  OutputLayout format = OutputLayout::kFake;  ///< costs are this format's bytes
  std::optional<GptqFormat> gptq_format;
  int compression_dim = 1;
  std::vector<Candidate> candidates;
  /// Budgets (at least one of the three): bits per weight of the selected tensors, bytes of
  /// the output files, a per-tensor SNR floor.
  std::optional<double> target_bpw;
  std::optional<uint64_t> target_size;
  std::optional<double> min_snr_db;
  PlanObjective objective = PlanObjective::kError;
  size_t max_solver_states = 100'000'000;
};

/// One selected tensor's choice.
struct PlannedChoice {
  std::string name;
  std::string group;  ///< the fused module it shares its choice with, or ""
  std::vector<int64_t> shape;
  ElemType dtype = ElemType::kF32;
  uint64_t elements = 0;
  int candidate = 0;  ///< index into PlanRequest::candidates
  uint64_t bytes = 0;
  CandidateMeasure measure;  ///< keep: error 0, SNR +inf
  std::string importance;    ///< the importance entry used, if any
};

/// A single candidate applied to every selected tensor, for comparison.
struct UniformChoice {
  int candidate = 0;
  bool possible = false;  ///< applies to every selected tensor
  uint64_t bytes = 0;
  double error = 0;
  double snr_mean_db = 0;  ///< size-weighted (elements)
};

struct PlanOutcome {
  std::vector<PlannedChoice> tensors;  ///< selected tensors in file order
  /// The session config: the request's config plus one weight_config entry per selected tensor
  /// (its exact name: the full config, or {"dtype": "fp32"} to keep it), and {"dtype": "fp32"}
  /// for tensors the default selection would quantize but --include/--exclude left out.
  nlohmann::ordered_json config;
  uint64_t selected_elements = 0;
  uint64_t selected_bytes = 0;  ///< output bytes of the selected tensors
  double bits_per_weight = 0;   ///< selected_bytes * 8 / selected_elements
  double total_error = 0;
  double snr_mean_db = 0;  ///< size-weighted over the selected tensors
  /// What `rtnq quantize INPUT --config PLAN --format F` writes: each safetensors file's name
  /// and size (header included), and their sum.
  std::vector<std::pair<std::string, uint64_t>> files;
  uint64_t predicted_bytes = 0;
  uint64_t budget_bytes = 0;  ///< the byte budget the solver met (selected tensors), if any
  std::vector<UniformChoice> uniform;  ///< per candidate
  size_t solver_states = 0;
  double measure_seconds = 0;
  double solve_seconds = 0;
  uint64_t measured_bytes = 0;  ///< input bytes of the tensors measured
  std::string measured_by;
  std::string importance;  ///< Importance::description
};

/// Called after each measured tensor: (tensors done, tensors in all, name).
using PlanProgress = std::function<void(size_t, size_t, const std::string&)>;

/// Plans `request.input`. Errors name the tensor, candidate or budget: a candidate that no
/// selected tensor... InvalidArgument for bad requests (no budget, no candidates, nothing
/// selected, a tensor or fused group that no candidate fits, unmatched importance);
/// OutOfRange when the budget is below the smallest possible (the message gives that minimum
/// in bytes and bits per weight).
absl::StatusOr<PlanOutcome> MakePlan(const PlanRequest& request, Measurer& measurer,
                                     const Importance& importance,
                                     const PlanProgress& progress = {});

/// Parses a size: bytes, or with a binary suffix k/kib, m/mib, g/gib, t/tib (case-insensitive;
/// "3.5GiB" allowed). InvalidArgument naming the value.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

}  // namespace rtnq::client
