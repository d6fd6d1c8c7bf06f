// JSON building blocks behind ParseConfigPatchJson, shared by the session-config parser and the
// server/client adapters that receive configs as JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/config/input_limits.h"
#include "core/config/quant_config.h"

namespace rtnq {

/// Parses `json_text` strictly (ParseJsonBounded): invalid JSON is InvalidArgument with
/// nlohmann's message and position, and so are a key repeated within one object (nlohmann would
/// silently keep the last) and nesting deeper than `max_depth`. Object keys keep their listed
/// order. Linear time and memory. Messages are prefixed with `where`. Throws nothing.
absl::StatusOr<nlohmann::ordered_json> ParseStrictJson(std::string_view json_text,
                                                       std::string_view where,
                                                       int max_depth = kMaxJsonDepth);

/// Reads a config patch from a parsed JSON object with INC's key names (see
/// ParseConfigPatchJson). Keys in `skip_keys` are left for the caller (they are listed as
/// accepted in the unknown-key error); any other unknown key or wrongly typed value is
/// InvalidArgument naming the key and the value, prefixed with `where`. Range checks are left to
/// ValidateConfig on the merged config. Throws nothing.
absl::StatusOr<QuantConfigPatch> PatchFromJson(const nlohmann::json& obj, std::string_view where,
                                               std::span<const std::string_view> skip_keys = {});
absl::StatusOr<QuantConfigPatch> PatchFromJson(const nlohmann::ordered_json& obj,
                                               std::string_view where,
                                               std::span<const std::string_view> skip_keys = {});

/// The full config as a JSON object with the spec's key names, in the spec's order.
nlohmann::ordered_json ConfigToJsonValue(const QuantConfig& cfg);

}  // namespace rtnq
