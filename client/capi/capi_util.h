// Shared pieces of the C API's implementation: status and string hand-off across the C boundary
// and the JSON requests every entry point reads.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/backend.h"
#include "client/capi/rtnq_c.h"
#include "client/local_backend.h"
#include "core/io/safetensors.h"

/// The local backend behind the C handle (shared by planning/saving and runs).
struct rtnq_local {
  std::unique_ptr<rtnq::client::LocalBackend> backend;
};

namespace rtnq::capi {

using Json = nlohmann::ordered_json;

/// A malloc'd copy (released with rtnq_free).
char* CopyString(std::string_view s);

/// Returns the status's code (0 for OK); sets *error (when error is not null) to its message.
int Report(const absl::Status& s, char** error);

/// Runs `body` (returning absl::Status) and reports its status; an exception escaping it (JSON
/// type errors, allocation failure) becomes InvalidArgument / Internal instead of crossing C.
template <typename F>
int Guard(char** error, F&& body) {
  try {
    return Report(body(), error);
  } catch (const nlohmann::json::exception& e) {
    return Report(absl::InvalidArgumentError(std::string("request JSON: ") + e.what()), error);
  } catch (const std::exception& e) {
    return Report(absl::InternalError(e.what()), error);
  }
}

/// Parses a request; InvalidArgument naming `what` unless it is a JSON object.
absl::StatusOr<Json> ParseObject(const char* text, std::string_view what);

/// The session config as JSON text: `j` is an object, JSON text or null ("{}").
absl::StatusOr<std::string> ConfigText(const Json& j);

/// "v1"/"v2" as users say it, or the config's own names "gptq"/"gptq_v2".
absl::StatusOr<GptqFormat> ParseGptqFormatName(std::string_view s);

/// The plan-shaping fields of a request (see rtnq_plan).
struct PlanRequest {
  std::string config_json = "{}";
  OutputLayout format = OutputLayout::kFake;
  std::optional<GptqFormat> gptq_format;
  int compression_dim = 1;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::string notice;  ///< why the config differs from the caller's (gptq's default scheme)
};
absl::StatusOr<PlanRequest> ReadPlanRequest(const Json& j);

/// Tensor descriptions of a request's "tensors" array, with empty data (planning reads only
/// names, dtypes and shapes). Errors name the entry.
absl::StatusOr<std::vector<TensorInfo>> ReadTensorInfos(const Json& tensors);

/// A caller's tensor as the client library's request; InvalidArgument for a bad dtype.
absl::StatusOr<client::TensorRequest> ToRequest(const rtnq_tensor& t);

/// The --report JSON of one tensor's result metrics and header (rtnq_result_json's shape).
Json ResultToJson(const client::TensorResult& r);

}  // namespace rtnq::capi
