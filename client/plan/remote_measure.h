// Measuring candidates on rtnq servers: one metrics-only candidate session per tensor (so
// round_robin spreads tensors over replicas), the tensor sent once and quantized there under
// every candidate, per-column squared errors coming back so importance weighting stays on the
// client. Per-element weights (a sensitivity checkpoint) would mean sending a second tensor per
// weight and are not supported.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/plan/measure.h"
#include "client/remote/client_options.h"

namespace rtnq::client {

class RemoteMeasurer : public Measurer {
 public:
  /// Builds the channel (no connection yet); `streams` tensors are measured at a time.
  /// InvalidArgument for streams < 1 and for what MakeChannel refuses.
  static absl::StatusOr<std::unique_ptr<RemoteMeasurer>> Create(ClientOptions options, int streams);
  ~RemoteMeasurer() override;

  /// Transient failures (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED) are retried
  /// on a new stream up to options.max_attempts; a server without candidate support is
  /// Unimplemented naming it; other errors name the tensor.
  absl::Status Measure(const std::vector<MeasureRequest>& requests,
                       const std::vector<Candidate>& candidates,
                       std::vector<std::vector<CandidateMeasure>>& out,
                       const MeasureProgress& progress) override;
  bool SupportsElementWeights() const override { return false; }
  std::string Describe() const override;

 private:
  struct State;
  explicit RemoteMeasurer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rtnq::client
