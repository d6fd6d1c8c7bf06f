// `rtnq quantize`: plans a checkpoint, streams its tensors through a Backend (local or remote)
// with N parallel sessions and writes the quantized checkpoint as results arrive.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/backend.h"
#include "client/progress.h"
#include "client/report.h"
#include "core/expert_layout.h"
#include "core/layout/loader_rules.h"

namespace rtnq::client {

/// Options of RunQuantize; main() fills them from flags, tests directly.
struct QuantizeRunOptions {
  std::string input;   ///< a .safetensors file, a sharded checkpoint or a HF model directory
  std::string output;  ///< a file for file input; a new or empty directory for a directory
  std::string config_json = "{}";  ///< the merged session config (MergeSessionConfig)
  OutputLayout format = OutputLayout::kFake;
  std::optional<GptqFormat> gptq_format;     ///< unset: v1 when every layer is sym, else v2
  int compression_dim = 1;                   ///< inc
  LoaderTarget target = LoaderTarget::kAny;  ///< --target: whose loader rules refuse the run
  /// --expert-layout: how stacked MoE expert tensors lie; unset: from config.json's model_type
  /// (client/expert_plan.h). A stacked tensor to quantize without either is an error.
  std::optional<ExpertLayout> expert_layout;
  std::vector<std::string> include;  ///< --include patterns (already split)
  std::vector<std::string> exclude;  ///< --exclude patterns
  int streams = 1;                   ///< parallel sessions, one worker thread each
  bool resume = false;               ///< reuse a previous run's verified partial output
  std::string report_path;           ///< --report FILE.json; empty: none
};

/// The result of a successful run.
struct QuantizeOutcome {
  RunSummary summary;
  std::vector<TensorReport> tensors;  ///< in file order
};

/// Plans every tensor (selection, config, output shapes, GPTQ compatibility) and checks the
/// loader rules of `target` (an error, before anything is written; other engines' problems are
/// warnings, shown through `progress` and kept in the summary) before sending any tensor,
/// lays out every output file's header from the plan, then lets `streams` workers (each with its
/// own session, one tensor at a time) quantize tensors, their outputs written at their offsets
/// as the bytes arrive (TensorFileSink: in remote mode no result is ever held whole, so the
/// client's memory does not grow with tensor or checkpoint size); copied tensors go straight
/// from the mmapped input. A retried tensor's partial bytes are forgotten and written afresh.
///
/// Partial output: everything is built in the directory OUTPUT.partial/ next to OUTPUT: each
/// output file as <name>.part, plus journal.jsonl (client/journal.h) listing finished quantized
/// tensors with the CRC32C of their input and output bytes. When all is written the files are
/// finished there (side files and the shard index added for a directory), the journal removed,
/// and the result renamed into place (the directory itself, or the one file); a successful run
/// leaves no OUTPUT.partial. A directory input gives a directory output with the same shard
/// files; a file input gives the file OUTPUT.
///
/// Failure: returns the failing tensor's error (naming it). OUTPUT.partial is kept only when it
/// holds finished quantized tensors and the error is not InvalidArgument (bad input or config,
/// which a rerun would hit again); the message then says so and how to resume. Otherwise it is
/// removed; nothing that looks finished is ever left. With `resume`, finished tensors whose
/// input and output checksums still match (and whose file layout the new plan reproduces) are
/// reused and only the rest are sent; without it an existing OUTPUT.partial is replaced.
absl::StatusOr<QuantizeOutcome> RunQuantize(const QuantizeRunOptions& options, Backend& backend,
                                            Progress& progress);

}  // namespace rtnq::client
