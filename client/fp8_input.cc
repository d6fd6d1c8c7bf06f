#include "client/fp8_input.h"

#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/config/input_limits.h"
#include "core/config/strict_json.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"

namespace rtnq::client {

absl::StatusOr<nlohmann::ordered_json> ReadInputConfig(const std::string& input_path,
                                                       const InputCheckpoint& input) {
  if (!input.is_dir) return nlohmann::ordered_json();
  const std::string path = (std::filesystem::path(input_path) / "config.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nlohmann::ordered_json();
  RTNQ_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  absl::StatusOr<nlohmann::ordered_json> config = ParseJsonBounded(text, kMaxJsonDepth);
  if (!config.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  if (!config->is_object())
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  return config;
}

absl::StatusOr<Fp8SourcePlan> PlanInputFp8(const std::vector<const TensorInfo*>& tensors,
                                           const nlohmann::ordered_json& config) {
  std::vector<TensorSpec> specs;
  for (const TensorInfo* t : tensors) {
    specs.push_back(TensorSpec{t->name, t->dtype, t->shape});
  }
  RTNQ_ASSIGN_OR_RETURN(const auto block, Fp8BlockFromConfig(config));
  return PlanFp8Sources(specs, block);
}

absl::StatusOr<std::vector<uint8_t>> DequantizedFp8Bytes(const InputCheckpoint& input,
                                                         const TensorInfo& t,
                                                         const Fp8ScaleLayout& layout,
                                                         const Engine& engine) {
  const TensorInfo* scale = input.checkpoint.Find(layout.scale_name);
  if (scale == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("FP8 tensor \"", t.name, "\": its scale \"",
                                                   layout.scale_name, "\" is missing"));
  }
  RTNQ_ASSIGN_OR_RETURN(const std::vector<float> values,
                        DequantizeFp8(t.name, t.dtype, t.data, layout, scale->data, engine));
  std::vector<uint8_t> bytes(values.size() * sizeof(float));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::string Fp8SourceNote(const TensorInfo& t, const Fp8ScaleLayout& layout) {
  return absl::StrCat("dequantized from ", ElemTypeName(t.dtype), " (", layout.description, ")");
}

}  // namespace rtnq::client
