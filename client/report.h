// What a quantize run reports: one entry per tensor (config, deciding weight_config entry,
// metrics, timings, who served it) and a session summary, as a JSON file (--report), a JSON
// summary on stdout (--json) and a human table.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/backend.h"

namespace rtnq::client {

/// One input tensor's fate.
struct TensorReport {
  std::string name;
  std::string action;  ///< "quantized", "skipped", "copied" or "consumed" (an FP8 scale)
  std::string reason;  ///< skipped / copied / consumed: why (quantized FP8 sources: the decoding)
  std::vector<int64_t> shape;
  std::string dtype;
  QuantConfig config;         ///< quantized: the resolved config
  std::string decided_by;     ///< quantized: DecidedByText
  TensorMetrics metrics;      ///< quantized; `seconds`: quantizing
  double server_seconds = 0;  ///< quantized: TensorResult::server_seconds
  double wall_seconds = 0;    ///< request to written, as the client saw it
  std::string served_by;
  int attempts = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  bool resumed = false;  ///< reused from an interrupted run's partial output
};

/// The whole run.
struct RunSummary {
  std::string input;
  std::string output;
  std::string format;       ///< fake, inc, gptq
  std::string gptq_format;  ///< gptq: "gptq" or "gptq_v2"
  std::string backend;      ///< Backend::Describe()
  int quantized = 0;
  int skipped = 0;
  int copied = 0;
  int consumed = 0;  ///< FP8 scales left out of the output
  int resumed = 0;
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
  double snr_mean_db = 0;
  std::vector<std::pair<std::string, double>> worst;  ///< up to 3 lowest SNR, worst first
  double wall_seconds = 0;
  std::vector<std::string> files;     ///< written, relative to output
  std::vector<std::string> warnings;  ///< loader rules the output breaks (--target any)
};

/// Fills the SNR and count fields of `summary` from `tensors`.
void Summarize(const std::vector<TensorReport>& tensors, RunSummary& summary);

/// A number as reports write it: non-finite values become "inf", "-inf" or "nan".
nlohmann::ordered_json JsonNumber(double v);
/// Inverse of JsonNumber (NaN for anything else).
double JsonToDouble(const nlohmann::ordered_json& j);

/// JSON forms; non-finite numbers (an SNR of +inf) become strings ("inf").
nlohmann::ordered_json TensorReportToJson(const TensorReport& t);
/// Inverse of TensorReportToJson (journal entries); InvalidArgument for a malformed object.
absl::StatusOr<TensorReport> TensorReportFromJson(const nlohmann::ordered_json& j);
nlohmann::ordered_json SummaryToJson(const RunSummary& s);
/// {"summary": ..., "tensors": [...]}.
nlohmann::ordered_json ReportToJson(const RunSummary& s, const std::vector<TensorReport>& tensors);

/// The table printed at the end of a run.
std::string SummaryText(const RunSummary& s);

}  // namespace rtnq::client
