// `rtnq verify`: proof that a quantized checkpoint is right. Using the manifest RunQuantize
// recorded, every quantized tensor is unpacked and dequantized and compared with the original,
// optionally requantized to check the stored bytes exactly, and every other tensor must be the
// original's, unchanged.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/manifest.h"
#include "core/engine.h"

namespace rtnq::client {

struct VerifyOptions {
  double min_snr_db = 10;  ///< a quantized tensor below this fails
  /// Also requantize each original tensor and require the stored tensors to match bit for bit
  /// (RTN is deterministic, so any difference is corruption or a different config).
  bool exact = true;
};

/// One quantized tensor's check.
struct TensorCheck {
  std::string name;  ///< the original tensor
  QuantConfig config;
  double snr_db = 0;
  double mse = 0;
  std::string exact = "-";  ///< "exact", "N bytes differ" or "-" (not checked)
  std::vector<std::string> problems;
};

struct VerifyReport {
  Manifest manifest;
  std::vector<TensorCheck> quantized;  ///< manifest order
  int copied_identical = 0;            ///< other tensors found unchanged
  std::vector<std::string> problems;   ///< every problem, "tensor: what"
  double snr_mean_db = 0;
  double worst_snr_db = 0;
  std::string worst;  ///< the tensor with the lowest SNR
  bool ok() const { return problems.empty(); }
};

/// Checks `quantized` (a file or directory RunQuantize wrote) against `original`. Problems with
/// the data are in the report (ok() false); a status error means a file could not be read or
/// carries no rtnq manifest (InvalidArgument naming it).
absl::StatusOr<VerifyReport> VerifyCheckpoint(const std::string& original,
                                              const std::string& quantized,
                                              const VerifyOptions& options, const Engine& engine);

}  // namespace rtnq::client
