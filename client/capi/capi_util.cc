#include "client/capi/capi_util.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/checkpoint_util.h"
#include "client/report.h"
#include "client/session_config.h"
#include "core/config/config_json.h"
#include "core/io/safetensors_header.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::capi {

char* CopyString(std::string_view s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

int Report(const absl::Status& s, char** error) {
  if (!s.ok() && error != nullptr) *error = CopyString(std::string(s.message()));
  return static_cast<int>(s.code());
}

absl::StatusOr<Json> ParseObject(const char* text, std::string_view what) {
  if (text == nullptr)
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), ": no JSON given"));
  RTNQ_ASSIGN_OR_RETURN(Json j, ParseStrictJson(text, what));
  if (!j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), ": not a JSON object"));
  return j;
}

absl::StatusOr<std::string> ConfigText(const Json& j) {
  if (j.is_null()) return std::string("{}");
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object()) return j.dump();
  return absl::InvalidArgumentError("config must be a JSON object or JSON text");
}

absl::StatusOr<GptqFormat> ParseGptqFormatName(std::string_view s) {
  if (s == "v1") return GptqFormat::kV1;
  if (s == "v2") return GptqFormat::kV2;
  absl::StatusOr<GptqFormat> f = ParseGptqFormat(s);
  if (f.ok()) return f;
  return absl::InvalidArgumentError(
      absl::StrCat("gptq_format must be v1, v2, gptq or gptq_v2, got \"", std::string(s), "\""));
}

absl::StatusOr<PlanRequest> ReadPlanRequest(const Json& j) {
  PlanRequest r;
  RTNQ_ASSIGN_OR_RETURN(r.config_json, ConfigText(j.value("config", Json())));
  RTNQ_ASSIGN_OR_RETURN(r.format, ParseOutputLayout(j.value("format", std::string("fake"))));
  if (r.format == OutputLayout::kGptq) {  // the CLI's default scheme for GPTQ
    RTNQ_ASSIGN_OR_RETURN(client::GptqSchemeDefault d,
                          client::ApplyGptqSchemeDefault(r.config_json));
    r.config_json = std::move(d.config_json);
    r.notice = std::move(d.notice);
  }
  if (j.contains("gptq_format") && !j["gptq_format"].is_null()) {
    RTNQ_ASSIGN_OR_RETURN(r.gptq_format, ParseGptqFormatName(j["gptq_format"].get<std::string>()));
  }
  r.compression_dim = j.value("compression_dim", 1);
  r.include = j.value("include", std::vector<std::string>{});
  r.exclude = j.value("exclude", std::vector<std::string>{});
  return r;
}

absl::StatusOr<std::vector<TensorInfo>> ReadTensorInfos(const Json& tensors) {
  if (!tensors.is_array()) return absl::InvalidArgumentError("\"tensors\" must be an array");
  std::vector<TensorInfo> out;
  out.reserve(tensors.size());
  for (const Json& e : tensors) {
    TensorInfo t;
    t.name = e.at("name").get<std::string>();
    const std::string dtype = e.at("dtype").get<std::string>();
    absl::StatusOr<ElemType> dt = ParseElemType(dtype);
    if (!dt.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(TensorPrefix(t.name), dt.status().message()));
    }
    t.dtype = *dt;
    t.shape = e.at("shape").get<std::vector<int64_t>>();
    absl::StatusOr<int64_t> n = CheckedNumElements(t.shape);
    if (!n.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(TensorPrefix(t.name), n.status().message()));
    }
    t.num_elements = *n;
    out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<client::TensorRequest> ToRequest(const rtnq_tensor& t) {
  if (t.name == nullptr || t.dtype == nullptr || (t.ndim > 0 && t.shape == nullptr) || t.ndim < 0 ||
      (t.size > 0 && t.data == nullptr)) {
    return absl::InvalidArgumentError("tensor: null name, dtype, shape or data");
  }
  client::TensorRequest r;
  r.tensor.name = t.name;
  absl::StatusOr<ElemType> dt = ParseElemType(t.dtype);
  if (!dt.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(TensorPrefix(r.tensor.name), dt.status().message()));
  }
  r.tensor.dtype = *dt;
  r.tensor.shape.assign(t.shape, t.shape + t.ndim);
  r.tensor.data = absl::Span<const uint8_t>(static_cast<const uint8_t*>(t.data), t.size);
  if (t.has_crc32c) r.crc32c = t.crc32c;
  return r;
}

Json ResultToJson(const client::TensorResult& r) {
  Json j;
  j["name"] = r.name;
  j["quantized"] = r.quantized;
  j["skip_reason"] = r.skip_reason;
  j["config"] = ConfigToJsonValue(r.config);
  j["decided_by"] = r.decided_by;
  j["match_kind"] = r.match_kind;
  j["served_by"] = r.served_by;
  j["attempts"] = r.attempts;
  const TensorMetrics& m = r.metrics;
  j["metrics"] = Json{{"elements", m.elements},
                      {"groups", m.groups},
                      {"mse", client::JsonNumber(m.mse)},
                      {"max_abs_error", client::JsonNumber(m.max_abs_error)},
                      {"snr_db", client::JsonNumber(m.snr_db)},
                      {"clip_ratio", client::JsonNumber(m.clip_ratio)},
                      {"quantize_seconds", m.seconds},
                      {"server_seconds", r.server_seconds}};
  Json outputs = Json::array();
  for (const TensorSpec& o : r.outputs) {
    int64_t elements = 1;
    for (int64_t d : o.shape) elements *= d;  // checked when the output was begun
    outputs.push_back(Json{{"name", o.name},
                           {"dtype", ElemTypeName(o.dtype)},
                           {"shape", o.shape},
                           {"bytes", elements * ElemSize(o.dtype)}});
  }
  j["outputs"] = std::move(outputs);
  return j;
}

}  // namespace rtnq::capi
