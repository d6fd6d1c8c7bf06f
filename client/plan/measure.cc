#include "client/plan/measure.h"

#include "absl/strings/str_cat.h"
#include "core/column_errors.h"
#include "core/status_macros.h"

namespace rtnq::client {

absl::StatusOr<CandidateMeasure> MeasureCandidate(const TensorInput& input,
                                                  const QuantConfig& config,
                                                  const TensorImportance& importance,
                                                  const Engine& engine) {
  rtnq::QuantizeOptions qo;
  qo.fake_quant = true;
  RTNQ_ASSIGN_OR_RETURN(const QuantizedTensor q, QuantizeTensor(input, config, qo, engine));
  if (!q.quantized) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", input.name, "\" was not quantized: ", q.skip_reason));
  }
  RTNQ_ASSIGN_OR_RETURN(
      const std::vector<double> sums,
      ColumnSquaredErrors(input, q.fake, importance.elements, ErrorSlices(input.shape), engine));
  return CandidateMeasure{WeightedError(sums, importance), q.metrics.mse, q.metrics.snr_db};
}

absl::Status LocalMeasurer::Measure(const std::vector<MeasureRequest>& requests,
                                    const std::vector<Candidate>& candidates,
                                    std::vector<std::vector<CandidateMeasure>>& out,
                                    const MeasureProgress& progress) {
  static const TensorImportance kNone;
  out.assign(requests.size(), {});
  for (size_t r = 0; r < requests.size(); ++r) {
    const MeasureRequest& req = requests[r];
    const TensorInfo& t = *req.tensor;
    const TensorInput input{t.name, t.dtype, t.shape, t.data};
    for (size_t k : req.candidates) {
      absl::StatusOr<CandidateMeasure> m = MeasureCandidate(
          input, *candidates[k].config, req.importance ? *req.importance : kNone, engine_);
      if (!m.ok()) {
        return absl::Status(m.status().code(), absl::StrCat("candidate \"", candidates[k].label,
                                                            "\": ", m.status().message()));
      }
      out[r].push_back(*m);
    }
    if (progress) progress(r);
  }
  return absl::OkStatus();
}

std::string LocalMeasurer::Describe() const {
  return absl::StrCat("local (", std::string(engine_.kernels().name), ", ", engine_.threads(),
                      " threads)");
}

}  // namespace rtnq::client
