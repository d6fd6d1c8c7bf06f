// The plan of a quantize run, made before any tensor is sent: what happens to every input
// tensor, which output tensors it becomes, how they are laid out in the output files, and the
// side files (config.json, quantize_config.json) a directory output gets. A bad config, shape
// or selection fails here, before any work or any file is written.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/backend.h"
#include "client/checkpoint_util.h"
#include "client/manifest.h"
#include "client/tensor_selection.h"
#include "core/expert_layout.h"
#include "core/io/fp8_source.h"
#include "core/io/safetensors_header.h"
#include "core/layout/loader_rules.h"

namespace rtnq::client {

/// One input tensor and its fate.
struct PlannedTensor {
  const TensorInfo* tensor = nullptr;
  TensorDecision decision;
  int file = 0;                     ///< index into RunPlan::files
  std::vector<TensorSpec> outputs;  ///< quantized: the packed tensors; otherwise the tensor
  /// GPTQ: the bias of a quantized layer, stored as F16 as the layout requires.
  bool bias_to_f16 = false;
  /// An FP8 source: dequantized to F32 with this scale before it is quantized or written.
  std::optional<Fp8ScaleLayout> fp8;
  /// The dtype the backend (or the writer) gets: F32 for an FP8 source, else the tensor's.
  ElemType dtype = ElemType::kF32;
  /// A quantized stacked MoE expert tensor: the 2-D weights its experts are quantized as.
  std::vector<ExpertSlice> experts;
  /// The bias of such a tensor ("..._bias" [E, F]), split like its weight into one bias per
  /// expert weight (packed formats: loaders read per-expert modules).
  std::vector<ExpertSlice> bias_experts;
};

/// One output safetensors file.
struct PlannedFile {
  std::string name;  ///< file name inside the output directory (file input: the output's name)
  std::vector<TensorSpec> specs;  ///< in write order
};

struct RunPlan {
  std::vector<PlannedTensor> tensors;  ///< in file order
  std::vector<PlannedFile> files;
  std::map<std::string, std::string> metadata;  ///< every file's __metadata__ (format, manifest)
  bool write_index = false;                     ///< the input had model.safetensors.index.json
  GptqFormat gptq_format = GptqFormat::kV1;
  Manifest manifest;
  /// config.json's quantization record (gptq, compressed-tensors, awq: the quantization_config
  /// object).
  nlohmann::ordered_json record;
  /// What loaders would make of the output that --target lets through (core/layout/loader_rules.h).
  std::vector<std::string> warnings;
  /// The input is an FP8 checkpoint: its quantization_config is dropped from config.json.
  bool fp8_source = false;
  /// The layout stacked MoE expert tensors are split in (sessions need it too).
  std::optional<ExpertLayout> expert_layout;
  uint64_t bytes_before = 0;  ///< input tensor bytes
  uint64_t bytes_after = 0;   ///< output tensor bytes
};

/// What PlanRun needs besides the checkpoint.
struct PlanOptions {
  std::string output_name;  ///< file input: the output file's name
  OutputLayout format = OutputLayout::kFake;
  std::optional<GptqFormat> gptq_format;  ///< unset: DefaultGptqFormat(quantized configs)
  int compression_dim = 1;
  LoaderTarget target = LoaderTarget::kAny;  ///< whose loader rules refuse rather than warn
  /// The input's config.json (null when there is none): FP8 block sizes, MoE family, hidden size.
  nlohmann::ordered_json input_config;
  /// --expert-layout; unset: from config.json's model_type.
  std::optional<ExpertLayout> expert_layout;
};

/// Plans `tensors` in the order given, without placing them in files (every PlannedTensor's
/// `file` is 0 and `files` is empty): decisions, outputs, the GPTQ format, the manifest, the
/// record, the metadata and byte counts. Only the tensors' names, dtypes and shapes are read, so
/// callers holding tensors in memory (the Python binding's state_dicts) plan by the same rules.
absl::StatusOr<RunPlan> PlanTensors(const std::vector<const TensorInfo*>& tensors,
                                    const WeightConfigResolver& resolver,
                                    const TensorSelection& selection, const PlanOptions& options);

/// Plans every tensor of `input` (opened from `input_path`) with PlanTensors and lays them out
/// in the output files. Both check the loader rules of the output (CheckLoaders,
/// ApplyLoaderTarget with options.target). Errors name the tensor (or layer) and rule.
absl::StatusOr<RunPlan> PlanRun(const InputCheckpoint& input, const std::string& input_path,
                                const WeightConfigResolver& resolver,
                                const TensorSelection& selection, const PlanOptions& options);

/// config.json's key for the plan's record: "quantization_config" for gptq, compressed-tensors
/// and awq (what loaders read), "rtnq_quantization" otherwise.
const char* RecordKey(const RunPlan& plan);

/// Writes `config` (a JSON object, e.g. the input's config.json) with the plan's record under
/// RecordKey to `out_dir`/config.json and, for gptq, the record to quantize_config.json.
/// Returns the file names written.
absl::StatusOr<std::vector<std::string>> WriteRecordFiles(const std::string& out_dir,
                                                          const RunPlan& plan,
                                                          nlohmann::ordered_json config);

/// Writes the side files of a directory input into `out_dir`: every regular file of `input_dir`
/// except safetensors files and the shard index is copied, config.json gets the record
/// ("quantization_config" for gptq, compressed-tensors and awq, "rtnq_quantization" otherwise;
/// an FP8 source's own quantization_config is removed) and gptq writes quantize_config.json.
/// Returns the file names written.
absl::StatusOr<std::vector<std::string>> WriteSideFiles(const std::string& input_dir,
                                                        const std::string& out_dir,
                                                        const RunPlan& plan);

}  // namespace rtnq::client
