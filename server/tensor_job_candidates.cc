// Candidate sessions (rtnq plan): one received tensor quantized under every candidate config, a
// ResultHeader and TensorMetrics per candidate, optionally with per-column squared errors, so a
// planning client sends each tensor once however many configs it compares.
#include "absl/strings/str_cat.h"
#include "core/column_errors.h"
#include "proto/quant_config_conversion.h"
#include "server/tensor_job.h"

namespace rtnq::server {

void TensorJob::FinishCandidates(JobStep& step, const TensorInput& input) {
  // The input was reserved whole at the header (TensorShare) and is released when the tensor
  // finishes; the working memory of each candidate (its fake-quantized copy when column errors
  // are asked for) is the core's transient memory.
  QuantizeOptions o = plan_.options;
  o.fake_quant = session_->column_errors;
  o.codes = false;
  JobStep answers;  // handed over only when every candidate succeeded
  for (size_t i = 0; i < session_->candidates.size(); ++i) {
    const QuantConfig& config = session_->candidates[i];
    auto fail = [&](const absl::Status& s) {
      Fail(step, absl::Status(s.code(), absl::StrCat("candidate ", i, " (", ConfigSummary(config),
                                                     "): ", s.message())));
    };
    absl::StatusOr<QuantizedTensor> q = QuantizeTensor(input, config, o, *engine_);
    if (!q.ok()) return fail(q.status());
    std::vector<double> sums;
    if (session_->column_errors) {
      absl::StatusOr<std::vector<double>> s =
          ColumnSquaredErrors(input, q->fake, {}, ErrorSlices(shape_), *engine_);
      if (!s.ok()) return fail(s.status());
      sums = *std::move(s);
    }
    EmitHeader(answers, true, "", {});
    v1::ResultHeader* h = answers.responses.back().mutable_result();
    ConfigToProto(config, h->mutable_config());
    h->set_decided_by("");
    h->set_match_kind("candidate");
    h->set_candidate_index(static_cast<int32_t>(i));
    EmitMetrics(answers, q->metrics, TensorOutcome::kQuantized);
    v1::TensorMetrics* m = answers.responses.back().mutable_metrics();
    m->set_candidate_index(static_cast<int32_t>(i));
    m->mutable_column_squared_errors()->Assign(sums.begin(), sums.end());
  }
  for (auto& r : answers.responses) step.responses.push_back(std::move(r));
  step.finished = answers.finished;
  step.outcome = answers.outcome;
  step.seconds = answers.seconds;
}

}  // namespace rtnq::server
