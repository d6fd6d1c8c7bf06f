#include "client/local_backend.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/checkpoint_util.h"
#include "core/config/weight_config.h"
#include "core/expert_quantize.h"
#include "core/io/safetensors_header.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

class LocalSession : public Session {
 public:
  LocalSession(const Engine& engine, WeightConfigResolver resolver, OutputLayoutOptions layout,
               std::optional<ExpertLayout> experts)
      : engine_(engine), resolver_(std::move(resolver)), layout_(layout), experts_(experts) {}

  // The result is computed whole in memory (the core quantizes whole tensors), then handed to
  // the sink like a remote result that arrived in one chunk per output.
  absl::StatusOr<TensorResult> Quantize(const TensorRequest& request, ResultSink& sink) override {
    const TensorInput& tensor = request.tensor;  // the CRC32C is for the wire only
    const auto start = std::chrono::steady_clock::now();
    RTNQ_ASSIGN_OR_RETURN(const ResolvedConfig rc, resolver_.Resolve(tensor.name));
    TensorResult result;
    result.name = tensor.name;
    result.config = rc.config;
    result.decided_by = rc.decided_by;
    result.match_kind = rc.match_kind;
    result.served_by = "local";
    RTNQ_ASSIGN_OR_RETURN(LayoutOutputs out,
                          QuantizeTensorToLayout(tensor, rc.config, layout_, experts_, engine_));
    result.quantized = true;
    for (const PackedTensor& p : out.tensors) {
      result.outputs.push_back(TensorSpec{p.name, p.dtype, p.shape});
    }
    absl::Status st = sink.Begin(result.outputs);
    for (size_t i = 0; i < out.tensors.size() && st.ok(); ++i) {
      st = sink.Write(i, 0, out.tensors[i].data);
    }
    if (!st.ok()) {
      sink.Discard();
      return st;
    }
    result.metrics = out.metrics;
    result.server_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  }

  absl::Status Close() override { return absl::OkStatus(); }

 private:
  const Engine& engine_;
  WeightConfigResolver resolver_;
  OutputLayoutOptions layout_;
  std::optional<ExpertLayout> experts_;
};

}  // namespace

absl::StatusOr<LayoutOutputs> QuantizeToLayout(const TensorInput& input, const QuantConfig& config,
                                               const OutputLayoutOptions& options,
                                               const Engine& engine) {
  rtnq::QuantizeOptions qo;  // the core's, not RunQuantize's
  qo.fake_quant = options.layout == OutputLayout::kFake;
  qo.codes = !qo.fake_quant;
  RTNQ_ASSIGN_OR_RETURN(QuantizedTensor q, QuantizeTensor(input, config, qo, engine));
  if (!q.quantized) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", input.name, "\" was not quantized: ", q.skip_reason));
  }
  LayoutOutputs out;
  out.metrics = q.metrics;
  if (options.layout == OutputLayout::kFake) {
    out.tensors.push_back(PackedTensor{input.name, input.dtype, input.shape, std::move(q.fake)});
  } else {
    RTNQ_ASSIGN_OR_RETURN(out.tensors, PackToLayout(q, input.name, options, engine));
  }
  return out;
}

absl::StatusOr<LayoutOutputs> QuantizeTensorToLayout(const TensorInput& input,
                                                     const QuantConfig& config,
                                                     const OutputLayoutOptions& options,
                                                     std::optional<ExpertLayout> experts,
                                                     const Engine& engine) {
  if (!StackedExpertsOf(input.name).has_value() || input.shape.size() != 3) {
    return QuantizeToLayout(input, config, options, engine);
  }
  if (!experts.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", input.name, "\" ", ShapeString(input.shape),
                     " holds stacked MoE experts but the session has no expert layout "
                     "(--expert-layout)"));
  }
  RTNQ_ASSIGN_OR_RETURN(const std::vector<ExpertSlice> slices,
                        PlanExpertSlices(input.name, input.shape, *experts, std::nullopt));
  auto piece = [&](const TensorInput& w) -> absl::StatusOr<PieceOutputs> {
    RTNQ_ASSIGN_OR_RETURN(LayoutOutputs o, QuantizeToLayout(w, config, options, engine));
    return PieceOutputs{std::move(o.tensors), o.metrics};
  };
  RTNQ_ASSIGN_OR_RETURN(
      PieceOutputs all,
      QuantizeStackedExperts(input, slices, experts->transposed,
                             options.layout == OutputLayout::kFake, piece, engine));
  return LayoutOutputs{std::move(all.tensors), all.metrics};
}

absl::StatusOr<std::unique_ptr<LocalBackend>> LocalBackend::Create(const EngineOptions& options) {
  RTNQ_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(options));
  return std::unique_ptr<LocalBackend>(new LocalBackend(std::move(engine)));
}

LocalBackend::LocalBackend(std::unique_ptr<Engine> engine) : engine_(std::move(engine)) {}

absl::StatusOr<std::unique_ptr<Session>> LocalBackend::OpenSession(const SessionSpec& spec) {
  RTNQ_ASSIGN_OR_RETURN(WeightConfigResolver resolver, ParseSessionConfigJson(spec.config_json));
  OutputLayoutOptions layout;
  layout.layout = spec.format;
  layout.compression_dim = spec.compression_dim;
  layout.gptq_format = spec.gptq_format;
  return std::unique_ptr<Session>(
      new LocalSession(*engine_, std::move(resolver), layout, spec.expert_layout));
}

std::string LocalBackend::Describe() const {
  return absl::StrCat("local (", std::string(engine_->kernels().name), ", ", engine_->threads(),
                      " threads)");
}

}  // namespace rtnq::client
