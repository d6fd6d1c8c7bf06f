// The C API's planning, local quantization and saving (rtnq_run_quantize is in run.cc).
#include "client/capi/rtnq_c.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/capi/capi_util.h"
#include "client/checkpoint_util.h"
#include "client/local_backend.h"
#include "client/memory_sink.h"
#include "client/run_plan.h"
#include "core/config/config_json.h"
#include "core/config/weight_config.h"
#include "core/io/file_io.h"
#include "core/io/safetensors_writer.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"
#include "rtnq/version.h"  // RTNQ_VERSION, generated from project(VERSION)

struct rtnq_session {
  std::unique_ptr<rtnq::client::Session> session;
};
struct rtnq_result {
  rtnq::client::TensorResult result;
  std::vector<rtnq::PackedTensor> outputs;  ///< the bytes of result.outputs, in order
  std::string json;
};

namespace rtnq::capi {
namespace {

namespace fs = std::filesystem;

const char* ActionName(client::TensorAction a) {
  switch (a) {
    case client::TensorAction::kQuantize:
      return "quantize";
    case client::TensorAction::kSkip:
      return "skip";
    case client::TensorAction::kConsume:
      return "consume";
    case client::TensorAction::kCopy:
      break;
  }
  return "copy";
}

Json SpecJson(const TensorSpec& s) {
  return Json{{"name", s.name}, {"dtype", ElemTypeName(s.dtype)}, {"shape", s.shape}};
}

// The plan of `tensors` under a request; `tensors` must outlive it (the plan points into it).
absl::StatusOr<client::RunPlan> MakePlan(const PlanRequest& r,
                                         const std::vector<TensorInfo>& tensors) {
  RTNQ_ASSIGN_OR_RETURN(const WeightConfigResolver resolver, ParseSessionConfigJson(r.config_json));
  RTNQ_ASSIGN_OR_RETURN(const client::TensorSelection selection,
                        client::TensorSelection::Create(r.include, r.exclude));
  client::PlanOptions po;
  po.format = r.format;
  po.gptq_format = r.gptq_format;
  po.compression_dim = r.compression_dim;
  std::vector<const TensorInfo*> ptrs;
  for (const TensorInfo& t : tensors) ptrs.push_back(&t);
  return client::PlanTensors(ptrs, resolver, selection, po);
}

Json PlanToJson(const PlanRequest& r, const std::vector<TensorInfo>& infos,
                const client::RunPlan& plan) {
  Json j;
  j["format"] = OutputLayoutName(r.format);
  j["output_form"] = client::OutputFormName(r.format);
  j["gptq_format"] = GptqFormatName(plan.gptq_format);
  j["gptq_format_wire"] = client::GptqFormatWireName(plan.gptq_format);
  j["compression_dim"] = r.compression_dim;
  j["config_json"] = r.config_json;
  if (!r.notice.empty()) j["notice"] = r.notice;
  Json tensors = Json::array();
  uint64_t bytes_before = 0;
  for (const client::PlannedTensor& p : plan.tensors) {
    Json t;
    t["name"] = p.tensor->name;
    t["action"] = ActionName(p.decision.action);
    t["reason"] = p.decision.reason;
    t["decided_by"] = client::DecidedByText(p.decision.resolved);
    t["match_kind"] = p.decision.resolved.match_kind;
    if (p.decision.action == client::TensorAction::kQuantize) {
      t["config"] = ConfigToJsonValue(p.decision.resolved.config);
    }
    Json outputs = Json::array();
    for (const TensorSpec& s : p.outputs) outputs.push_back(SpecJson(s));
    t["outputs"] = std::move(outputs);
    t["bias_to_f16"] = p.bias_to_f16;
    tensors.push_back(std::move(t));
  }
  for (const TensorInfo& t : infos) {
    bytes_before += static_cast<uint64_t>(t.num_elements) * ElemSize(t.dtype);
  }
  j["tensors"] = std::move(tensors);
  j["record_key"] = client::RecordKey(plan);
  j["record"] = plan.record;
  j["metadata"] = plan.metadata;
  j["bytes_before"] = bytes_before;
  j["bytes_after"] = plan.bytes_after;
  return j;
}

// The output directory of a save: new or empty, like a directory output of `rtnq quantize`.
absl::Status PrepareOutputDir(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("\"output\": no directory given");
  std::error_code ec;
  if (fs::exists(dir, ec) && (!fs::is_directory(dir, ec) || !fs::is_empty(dir, ec))) {
    return absl::FailedPreconditionError(
        absl::StrCat("output ", dir, " must be a new or empty directory"));
  }
  fs::create_directories(dir, ec);
  if (ec) return ErrnoError(ec.value(), "create directory", dir);
  return absl::OkStatus();
}

absl::Status Save(const Json& req, const rtnq_buffer* buffers, int64_t count, Json& reply) {
  RTNQ_ASSIGN_OR_RETURN(const PlanRequest r, ReadPlanRequest(req));
  RTNQ_ASSIGN_OR_RETURN(const std::vector<TensorInfo> infos, ReadTensorInfos(req.at("tensors")));
  RTNQ_ASSIGN_OR_RETURN(const client::RunPlan plan, MakePlan(r, infos));
  Json config = req.value("model_config", Json());
  if (config.is_null()) config = Json::object();
  if (!config.is_object()) return absl::InvalidArgumentError("\"model_config\" must be an object");
  std::map<std::string, absl::Span<const uint8_t>, std::less<>> data;
  for (int64_t i = 0; i < count; ++i) {
    if (buffers[i].name == nullptr || (buffers[i].size > 0 && buffers[i].data == nullptr)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor buffer ", i, ": null name or data"));
    }
    data[buffers[i].name] =
        absl::Span<const uint8_t>(static_cast<const uint8_t*>(buffers[i].data), buffers[i].size);
  }
  std::vector<TensorSpec> specs;
  for (const client::PlannedTensor& p : plan.tensors) {
    for (const TensorSpec& s : p.outputs) {
      auto it = data.find(s.name);
      if (it == data.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor \"", s.name, "\" of the plan is missing from the result"));
      }
      specs.push_back(s);
    }
  }
  const std::string dir = req.at("output").get<std::string>();
  RTNQ_RETURN_IF_ERROR(PrepareOutputDir(dir));
  RTNQ_ASSIGN_OR_RETURN(
      SafetensorsWriter writer,
      SafetensorsWriter::Create((fs::path(dir) / kSingleFileName).string(), specs, plan.metadata));
  for (const TensorSpec& s : specs) {
    // The writer checks each size against the plan's dtype and shape.
    RTNQ_RETURN_IF_ERROR(writer.WriteTensor(s.name, data.at(s.name)));
  }
  RTNQ_RETURN_IF_ERROR(writer.Finish());
  RTNQ_ASSIGN_OR_RETURN(std::vector<std::string> side, client::WriteRecordFiles(dir, plan, config));
  Json files = Json::array({kSingleFileName});
  for (const std::string& f : side) files.push_back(f);
  reply["files"] = std::move(files);
  reply["format"] = OutputLayoutName(r.format);
  reply["gptq_format"] = GptqFormatName(plan.gptq_format);
  return absl::OkStatus();
}

}  // namespace
}  // namespace rtnq::capi

using rtnq::capi::Guard;
using rtnq::capi::Json;

extern "C" {

int rtnq_abi_version(void) { return RTNQ_C_ABI_VERSION; }

const char* rtnq_version(void) { return RTNQ_VERSION; }

void rtnq_free(void* p) { std::free(p); }

int rtnq_plan(const char* request_json, char** reply_json, char** error) {
  return Guard(error, [&]() -> absl::Status {
    RTNQ_ASSIGN_OR_RETURN(const Json req, rtnq::capi::ParseObject(request_json, "plan request"));
    RTNQ_ASSIGN_OR_RETURN(const rtnq::capi::PlanRequest r, rtnq::capi::ReadPlanRequest(req));
    RTNQ_ASSIGN_OR_RETURN(const std::vector<rtnq::TensorInfo> infos,
                          rtnq::capi::ReadTensorInfos(req.value("tensors", Json::array())));
    RTNQ_ASSIGN_OR_RETURN(const rtnq::client::RunPlan plan, rtnq::capi::MakePlan(r, infos));
    *reply_json = rtnq::capi::CopyString(rtnq::capi::PlanToJson(r, infos, plan).dump());
    return absl::OkStatus();
  });
}

int rtnq_local_create(int threads, const char* kernels, rtnq_local** out, char** error) {
  return Guard(error, [&]() -> absl::Status {
    rtnq::EngineOptions eo;
    eo.threads = threads;
    if (kernels != nullptr) eo.kernels = kernels;
    RTNQ_ASSIGN_OR_RETURN(auto backend, rtnq::client::LocalBackend::Create(eo));
    *out = new rtnq_local{std::move(backend)};
    return absl::OkStatus();
  });
}

void rtnq_local_destroy(rtnq_local* local) { delete local; }

char* rtnq_local_describe(const rtnq_local* local) {
  return rtnq::capi::CopyString(local->backend->Describe());
}

int rtnq_local_open(rtnq_local* local, const char* spec_json, rtnq_session** out, char** error) {
  return Guard(error, [&]() -> absl::Status {
    RTNQ_ASSIGN_OR_RETURN(const Json j, rtnq::capi::ParseObject(spec_json, "session spec"));
    rtnq::client::SessionSpec spec;
    RTNQ_ASSIGN_OR_RETURN(spec.config_json, rtnq::capi::ConfigText(j.value("config_json", Json())));
    RTNQ_ASSIGN_OR_RETURN(spec.format,
                          rtnq::ParseOutputLayout(j.value("format", std::string("fake"))));
    RTNQ_ASSIGN_OR_RETURN(spec.gptq_format, rtnq::capi::ParseGptqFormatName(
                                                j.value("gptq_format", std::string("v1"))));
    spec.compression_dim = j.value("compression_dim", 1);
    RTNQ_ASSIGN_OR_RETURN(auto session, local->backend->OpenSession(spec));
    *out = new rtnq_session{std::move(session)};
    return absl::OkStatus();
  });
}

void rtnq_session_destroy(rtnq_session* session) {
  if (session != nullptr) (void)session->session->Close();
  delete session;
}

int rtnq_session_quantize(rtnq_session* session, const rtnq_tensor* tensor, rtnq_result** out,
                          char** error) {
  return Guard(error, [&]() -> absl::Status {
    RTNQ_ASSIGN_OR_RETURN(const rtnq::client::TensorRequest req, rtnq::capi::ToRequest(*tensor));
    rtnq::client::MemorySink sink;
    RTNQ_ASSIGN_OR_RETURN(rtnq::client::TensorResult result, session->session->Quantize(req, sink));
    auto r = std::make_unique<rtnq_result>();
    r->json = rtnq::capi::ResultToJson(result).dump();
    r->result = std::move(result);
    r->outputs = std::move(sink.outputs);
    *out = r.release();
    return absl::OkStatus();
  });
}

const char* rtnq_result_json(const rtnq_result* result) { return result->json.c_str(); }

int rtnq_result_output(const rtnq_result* result, int32_t index, const void** data, uint64_t* size,
                       char** error) {
  if (index < 0 || static_cast<size_t>(index) >= result->outputs.size()) {
    return rtnq::capi::Report(absl::OutOfRangeError(absl::StrCat("no output ", index)), error);
  }
  const std::vector<uint8_t>& bytes = result->outputs[static_cast<size_t>(index)].data;
  *data = bytes.data();
  *size = bytes.size();
  return 0;
}

void rtnq_result_destroy(rtnq_result* result) { delete result; }

int rtnq_gptq_bias(const rtnq_tensor* tensor, void* out, uint64_t out_size, char** error) {
  return Guard(error, [&]() -> absl::Status {
    RTNQ_ASSIGN_OR_RETURN(const rtnq::client::TensorRequest req, rtnq::capi::ToRequest(*tensor));
    rtnq::TensorInfo info;
    info.name = req.tensor.name;
    info.dtype = req.tensor.dtype;
    info.shape = req.tensor.shape;
    RTNQ_ASSIGN_OR_RETURN(info.num_elements, rtnq::CheckedNumElements(info.shape));
    info.data = req.tensor.data;
    RTNQ_ASSIGN_OR_RETURN(const std::vector<uint8_t> half, rtnq::client::GptqBiasBytes(info));
    if (half.size() != out_size) {
      return absl::InvalidArgumentError(absl::StrCat(rtnq::TensorPrefix(req.tensor.name),
                                                     "bias needs ", half.size(), " bytes, got ",
                                                     out_size));
    }
    std::memcpy(out, half.data(), half.size());
    return absl::OkStatus();
  });
}

int rtnq_save(const char* request_json, const rtnq_buffer* tensors, int64_t count,
              char** reply_json, char** error) {
  return Guard(error, [&]() -> absl::Status {
    RTNQ_ASSIGN_OR_RETURN(const Json req, rtnq::capi::ParseObject(request_json, "save request"));
    Json reply;
    RTNQ_RETURN_IF_ERROR(rtnq::capi::Save(req, tensors, count, reply));
    *reply_json = rtnq::capi::CopyString(reply.dump());
    return absl::OkStatus();
  });
}

}  // extern "C"
