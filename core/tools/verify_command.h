// `rtnq-local verify`: checks a quantized checkpoint against the original it came from.
#pragma once

#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "core/engine.h"
#include "core/pack.h"
#include "core/tools/tensor_plan.h"

namespace rtnq::local {

/// Options of RunVerify; main() fills them from flags.
struct VerifyCommandOptions {
  std::string original;   ///< file or directory, as given to quantize
  std::string quantized;  ///< quantize's output
  /// Must match the recorded format when given; required when the checkpoint has no manifest.
  std::optional<OutputFormat> format;
  /// Used only when the checkpoint has no "rtnq.quantization" manifest: the session config,
  /// preset and GPTQ checkpoint format it was quantized with.
  std::string config_path;
  std::string preset;
  std::optional<GptqFormat> gptq_format;
  double min_snr_db = 10;  ///< a quantized tensor below this fails
  /// Also requantize each original tensor and require the stored tensors to match bit for bit
  /// (RTN is deterministic, so any difference is corruption or a different config).
  bool exact = true;
  EngineOptions engine;
};

/// For every quantized tensor: unpacks (UnpackInc / UnpackGptq), dequantizes (DequantizeCodes /
/// DequantizeGptq) and compares with the original (SNR against min_snr_db, shapes), and in exact
/// mode compares the stored bytes with a fresh quantization. Every other original tensor must be
/// present unchanged, and no unexpected tensor may appear. Prints a line per tensor and a
/// summary. DataLoss listing the first problem when any check fails; other codes when a file
/// cannot be read or the options are inconsistent.
absl::Status RunVerify(const VerifyCommandOptions& options, std::ostream& out);

}  // namespace rtnq::local
