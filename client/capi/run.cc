// rtnq_run_quantize: the client library's RunQuantize with the local backend or a caller's
// transport behind the Backend seam, so a Python run writes exactly what `rtnq quantize` writes.
#include <ostream>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/capi/capi_util.h"
#include "client/capi/rtnq_c.h"
#include "client/checkpoint_util.h"
#include "client/local_backend.h"
#include "client/progress.h"
#include "client/quantize_run.h"
#include "client/report.h"
#include "core/config/config_json.h"
#include "core/status_macros.h"

struct rtnq_status {
  int code = 0;
  std::string message;
};
struct rtnq_result_builder {
  rtnq::client::TensorResult result;
  std::vector<rtnq::PackedTensor> outputs;  ///< filled by the callback, then given to the sink
};

namespace rtnq::capi {
namespace {

absl::Status StatusOf(const rtnq_status& s, std::string_view what) {
  if (s.code == 0) return absl::OkStatus();
  if (s.code < 0 || s.code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::UnknownError(absl::StrCat(std::string(what), ": ", s.message));
  }
  return absl::Status(static_cast<absl::StatusCode>(s.code), s.message);
}

class CallbackSession : public client::Session {
 public:
  CallbackSession(const rtnq_backend_callbacks& cb, int64_t id) : cb_(cb), id_(id) {}
  ~CallbackSession() override { (void)Close(); }

  // The Python transport hands back whole outputs; they go to the sink in one piece each.
  absl::StatusOr<client::TensorResult> Quantize(const client::TensorRequest& request,
                                                client::ResultSink& sink) override {
    const TensorInput& t = request.tensor;
    const std::string& dtype = ElemTypeName(t.dtype);
    rtnq_tensor view{t.name.c_str(),
                     dtype.c_str(),
                     t.shape.data(),
                     static_cast<int32_t>(t.shape.size()),
                     t.data.data(),
                     t.data.size(),
                     request.crc32c.value_or(0),
                     request.crc32c.has_value() ? 1 : 0};
    rtnq_result_builder builder;
    builder.result.name = t.name;
    rtnq_status status;
    cb_.quantize(cb_.user, id_, &view, &builder, &status);
    RTNQ_RETURN_IF_ERROR(StatusOf(status, t.name));
    builder.result.outputs.clear();
    for (const PackedTensor& p : builder.outputs) {
      builder.result.outputs.push_back(TensorSpec{p.name, p.dtype, p.shape});
    }
    absl::Status st = sink.Begin(builder.result.outputs);
    for (size_t i = 0; st.ok() && i < builder.outputs.size(); ++i) {
      st = sink.Write(i, 0, builder.outputs[i].data);
    }
    if (!st.ok()) {
      sink.Discard();
      return st;
    }
    return std::move(builder.result);
  }

  absl::Status Close() override {
    if (closed_) return absl::OkStatus();
    closed_ = true;
    rtnq_status status;
    if (cb_.close_session != nullptr) cb_.close_session(cb_.user, id_, &status);
    return StatusOf(status, "close session");
  }

 private:
  const rtnq_backend_callbacks& cb_;
  const int64_t id_;
  bool closed_ = false;
};

class CallbackBackend : public client::Backend {
 public:
  explicit CallbackBackend(const rtnq_backend_callbacks& cb) : cb_(cb) {}

  absl::StatusOr<std::unique_ptr<client::Session>> OpenSession(
      const client::SessionSpec& spec) override {
    Json j;
    j["config_json"] = spec.config_json;
    j["format"] = OutputLayoutName(spec.format);
    j["output_form"] = client::OutputFormName(spec.format);
    j["gptq_format"] = GptqFormatName(spec.gptq_format);
    j["gptq_format_wire"] = client::GptqFormatWireName(spec.gptq_format);
    j["compression_dim"] = spec.compression_dim;
    rtnq_status status;
    const int64_t id = cb_.open_session(cb_.user, j.dump().c_str(), &status);
    RTNQ_RETURN_IF_ERROR(StatusOf(status, "open session"));
    return std::unique_ptr<client::Session>(new CallbackSession(cb_, id));
  }

  std::string Describe() const override {
    return cb_.describe != nullptr ? cb_.describe : "callback";
  }

 private:
  const rtnq_backend_callbacks& cb_;
};

std::ostream& NullStream() {
  static std::ostream null(nullptr);
  return null;
}

class CallbackProgress : public client::Progress {
 public:
  explicit CallbackProgress(const rtnq_progress_callbacks* cb)
      : Progress(client::ProgressMode::kQuiet, NullStream()), cb_(cb) {}

  void Start(int tensors, uint64_t bytes) override {
    if (cb_ != nullptr && cb_->start != nullptr) cb_->start(cb_->user, tensors, bytes);
  }
  void TensorDone(const client::TensorReport& t) override {
    if (cb_ != nullptr && cb_->tensor_done != nullptr) {
      cb_->tensor_done(cb_->user, client::TensorReportToJson(t).dump().c_str());
    }
  }
  void Finish() override {}

 private:
  const rtnq_progress_callbacks* cb_;
};

absl::StatusOr<client::QuantizeRunOptions> ReadRunOptions(const Json& j) {
  RTNQ_ASSIGN_OR_RETURN(const PlanRequest r, ReadPlanRequest(j));
  client::QuantizeRunOptions o;
  o.input = j.at("input").get<std::string>();
  o.output = j.at("output").get<std::string>();
  o.config_json = r.config_json;
  o.format = r.format;
  o.gptq_format = r.gptq_format;
  o.compression_dim = r.compression_dim;
  o.include = r.include;
  o.exclude = r.exclude;
  o.streams = j.value("streams", 1);
  o.resume = j.value("resume", false);
  o.report_path = j.value("report_path", std::string());
  return o;
}

absl::Status HeaderFromJson(const Json& h, client::TensorResult& r) {
  r.quantized = h.value("quantized", r.quantized);
  r.skip_reason = h.value("skip_reason", r.skip_reason);
  if (h.contains("config")) {
    RTNQ_ASSIGN_OR_RETURN(const QuantConfigPatch patch,
                          PatchFromJson(h["config"], "result config"));
    r.config = QuantConfig{};
    patch.ApplyTo(r.config);
  }
  r.decided_by = h.value("decided_by", r.decided_by);
  r.match_kind = h.value("match_kind", r.match_kind);
  r.served_by = h.value("served_by", r.served_by);
  r.attempts = h.value("attempts", r.attempts);
  if (h.contains("metrics")) {
    const Json& m = h["metrics"];
    TensorMetrics& x = r.metrics;
    x.elements = m.value("elements", x.elements);
    x.groups = m.value("groups", x.groups);
    if (m.contains("mse")) x.mse = client::JsonToDouble(m["mse"]);
    if (m.contains("max_abs_error")) x.max_abs_error = client::JsonToDouble(m["max_abs_error"]);
    if (m.contains("snr_db")) x.snr_db = client::JsonToDouble(m["snr_db"]);
    if (m.contains("clip_ratio")) x.clip_ratio = client::JsonToDouble(m["clip_ratio"]);
    x.seconds = m.value("quantize_seconds", x.seconds);
    r.server_seconds = m.value("server_seconds", r.server_seconds);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace rtnq::capi

using rtnq::capi::Guard;
using rtnq::capi::Json;

extern "C" {

void rtnq_status_set(rtnq_status* status, int32_t code, const char* message) {
  status->code = code;
  status->message = message != nullptr ? message : "";
}

int rtnq_builder_set(rtnq_result_builder* builder, const char* header_json, char** error) {
  return Guard(error, [&]() -> absl::Status {
    RTNQ_ASSIGN_OR_RETURN(const Json h, rtnq::capi::ParseObject(header_json, "result header"));
    return rtnq::capi::HeaderFromJson(h, builder->result);
  });
}

void* rtnq_builder_add_output(rtnq_result_builder* builder, const char* name, const char* dtype,
                              const int64_t* shape, int32_t ndim, uint64_t size, char** error) {
  void* where = nullptr;
  Guard(error, [&]() -> absl::Status {
    rtnq_tensor t{name, dtype, shape, ndim, nullptr, 0, 0, 0};
    RTNQ_ASSIGN_OR_RETURN(const rtnq::client::TensorRequest spec, rtnq::capi::ToRequest(t));
    rtnq::PackedTensor& p = builder->outputs.emplace_back();
    p.name = spec.tensor.name;
    p.dtype = spec.tensor.dtype;
    p.shape = spec.tensor.shape;
    p.data.resize(size);
    // A zero-byte output still needs a non-null answer.
    where = size > 0 ? static_cast<void*>(p.data.data()) : static_cast<void*>(builder);
    return absl::OkStatus();
  });
  return where;
}

int rtnq_run_quantize(const char* options_json, rtnq_local* local,
                      const rtnq_backend_callbacks* backend,
                      const rtnq_progress_callbacks* progress, char** outcome_json, char** error) {
  return Guard(error, [&]() -> absl::Status {
    if ((local == nullptr) == (backend == nullptr)) {
      return absl::InvalidArgumentError("give exactly one of a local backend and callbacks");
    }
    if (backend != nullptr && (backend->open_session == nullptr || backend->quantize == nullptr)) {
      return absl::InvalidArgumentError("callbacks: open_session and quantize are required");
    }
    RTNQ_ASSIGN_OR_RETURN(const Json j, rtnq::capi::ParseObject(options_json, "run options"));
    RTNQ_ASSIGN_OR_RETURN(const rtnq::client::QuantizeRunOptions options,
                          rtnq::capi::ReadRunOptions(j));
    std::unique_ptr<rtnq::client::Backend> callbacks;
    rtnq::client::Backend* b = local != nullptr ? local->backend.get() : nullptr;
    if (b == nullptr) {
      callbacks = std::make_unique<rtnq::capi::CallbackBackend>(*backend);
      b = callbacks.get();
    }
    rtnq::capi::CallbackProgress p(progress);
    RTNQ_ASSIGN_OR_RETURN(const rtnq::client::QuantizeOutcome outcome,
                          rtnq::client::RunQuantize(options, *b, p));
    *outcome_json =
        rtnq::capi::CopyString(rtnq::client::ReportToJson(outcome.summary, outcome.tensors).dump());
    return absl::OkStatus();
  });
}

}  // extern "C"
