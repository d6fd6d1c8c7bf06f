// Measuring tensors under candidate configs: the error (importance-weighted when weights are
// given) and SNR each candidate would give each tensor. Local mode reads every tensor once
// (mmapped) and runs all its candidates on it; the remote measurer (remote_measure.h) sends each
// tensor once to an rtnq server that runs them all.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/plan/candidates.h"
#include "client/plan/importance.h"
#include "core/engine.h"
#include "core/io/safetensors.h"

namespace rtnq::client {

/// One tensor under one candidate.
struct CandidateMeasure {
  double error = 0;   ///< sum of (importance *) (w - q)^2 (WeightedError)
  double mse = 0;     ///< the quantizer's metrics
  double snr_db = 0;  ///< +inf for an exact result
};

/// A tensor and the candidates (indices into the candidate list, never keep) to run on it.
struct MeasureRequest {
  const TensorInfo* tensor = nullptr;
  const TensorImportance* importance = nullptr;
  std::vector<size_t> candidates;
};

/// Called after each tensor (from any one thread at a time) with its request index.
using MeasureProgress = std::function<void(size_t request)>;

/// Where measurements run.
class Measurer {
 public:
  virtual ~Measurer() = default;
  /// Fills out[r][j] for request r's j-th candidate. A tensor a candidate cannot quantize (a
  /// non-finite value, a scale out of range) fails the whole call with its error, naming the
  /// tensor and candidate: quantizing it for real would fail the same way.
  virtual absl::Status Measure(const std::vector<MeasureRequest>& requests,
                               const std::vector<Candidate>& candidates,
                               std::vector<std::vector<CandidateMeasure>>& out,
                               const MeasureProgress& progress) = 0;
  /// Whether per-element importance (a sensitivity checkpoint) can be used.
  virtual bool SupportsElementWeights() const = 0;
  /// "local (avx512, 8 threads)" or the servers.
  virtual std::string Describe() const = 0;
};

/// One candidate on one tensor in this process: QuantizeTensor (fake-quant output), then
/// ColumnSquaredErrors over the tensor's ErrorSlices with its element weights, then
/// WeightedError with its column weights. The server's candidate measurements run the same.
absl::StatusOr<CandidateMeasure> MeasureCandidate(const TensorInput& input,
                                                  const QuantConfig& config,
                                                  const TensorImportance& importance,
                                                  const Engine& engine);

/// Runs the candidates of one tensor after another on an Engine (its arena bounds threads).
class LocalMeasurer : public Measurer {
 public:
  explicit LocalMeasurer(const Engine& engine) : engine_(engine) {}
  absl::Status Measure(const std::vector<MeasureRequest>& requests,
                       const std::vector<Candidate>& candidates,
                       std::vector<std::vector<CandidateMeasure>>& out,
                       const MeasureProgress& progress) override;
  bool SupportsElementWeights() const override { return true; }
  std::string Describe() const override;

 private:
  const Engine& engine_;
};

}  // namespace rtnq::client
