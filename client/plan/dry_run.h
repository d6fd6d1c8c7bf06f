// `rtnq quantize --dry-run`: the whole plan of a quantize run (selection, configs, output tensors
// and their sizes, GPTQ and loader checks, the output files) made from the input's headers alone,
// without reading any tensor data.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/quantize_run.h"
#include "client/run_plan.h"

namespace rtnq::client {

struct DryRun {
  InputCheckpoint input;  ///< opened header only; `plan` points into it
  RunPlan plan;
  std::vector<std::pair<std::string, uint64_t>> files;  ///< each output file and its size
  uint64_t total_bytes = 0;
};

/// Plans `options` exactly as RunQuantize does before its first tensor, from headers only: the
/// same errors (and so exit codes) for a bad config, selection, shape or GPTQ rule. OUTPUT is
/// neither checked nor touched; only its file name is used (for a file input).
absl::StatusOr<DryRun> DryRunQuantize(const QuantizeRunOptions& options);

/// Every input tensor's fate (quantized with which config and decided by what, skipped or
/// copied and why), its output tensors with dtypes, shapes and bytes, then each output file.
std::string DryRunText(const QuantizeRunOptions& options, const DryRun& run);
/// The same as JSON: {"summary": {...}, "tensors": [...], "files": [...]}.
nlohmann::ordered_json DryRunJson(const QuantizeRunOptions& options, const DryRun& run);

}  // namespace rtnq::client
