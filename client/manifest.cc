#include "client/manifest.h"

#include "absl/strings/str_cat.h"
#include "core/config/config_json.h"
#include "core/expert_layout.h"
#include "core/status_macros.h"

namespace rtnq::client {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kVersion = 1;

absl::Status FieldError(std::string_view where, std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(where), ": ", std::string(field), " ", std::string(what)));
}

// Looks up `key` in `obj`, requiring the given JSON type.
absl::StatusOr<const Json*> Get(const Json& obj, const std::string& key, Json::value_t type,
                                std::string_view where, std::string_view field) {
  const auto it = obj.find(key);
  if (it == obj.end()) return FieldError(where, field, "is missing");
  const bool ok = it->type() == type || (type == Json::value_t::number_integer &&
                                         it->type() == Json::value_t::number_unsigned);
  if (!ok) return FieldError(where, field, absl::StrCat("has the wrong type: ", it->dump()));
  return &*it;
}

}  // namespace

Json ManifestToJson(const Manifest& m) {
  Json j;
  j["version"] = kVersion;
  j["format"] = OutputLayoutName(m.format);
  if (m.format == OutputLayout::kInc) j["compression_dim"] = m.compression_dim;
  if (m.format == OutputLayout::kGptq) j["checkpoint_format"] = GptqFormatName(m.gptq_format);
  Json tensors = Json::object();
  for (const ManifestTensor& t : m.tensors) {
    Json e;
    e["layer"] = t.layer;
    e["dtype"] = ElemTypeName(t.dtype);
    e["shape"] = t.shape;
    e["decided_by"] = t.decided_by;
    e["config"] = ConfigToJsonValue(t.config);
    if (!t.expert_layout.empty()) e["expert_layout"] = t.expert_layout;
    tensors[t.name] = std::move(e);
  }
  j["tensors"] = std::move(tensors);
  Json skipped = Json::object();
  for (const auto& [name, why] : m.skipped) skipped[name] = why;
  j["skipped"] = std::move(skipped);
  return j;
}

absl::StatusOr<Manifest> ManifestFromJson(std::string_view text, std::string_view where) {
  RTNQ_ASSIGN_OR_RETURN(const Json j, ParseStrictJson(text, where));
  if (!j.is_object()) return FieldError(where, "manifest", "is not a JSON object");
  RTNQ_ASSIGN_OR_RETURN(const Json* version,
                        Get(j, "version", Json::value_t::number_integer, where, "version"));
  if (version->get<int64_t>() != kVersion) {
    return FieldError(where, "version", absl::StrCat(version->dump(), " is not supported"));
  }
  Manifest m;
  RTNQ_ASSIGN_OR_RETURN(const Json* format,
                        Get(j, "format", Json::value_t::string, where, "format"));
  RTNQ_ASSIGN_OR_RETURN(m.format, ParseOutputLayout(format->get<std::string>()));
  if (m.format == OutputLayout::kInc) {
    RTNQ_ASSIGN_OR_RETURN(const Json* dim, Get(j, "compression_dim", Json::value_t::number_integer,
                                               where, "compression_dim"));
    m.compression_dim = dim->get<int>();
  }
  if (m.format == OutputLayout::kGptq) {
    RTNQ_ASSIGN_OR_RETURN(const Json* cf, Get(j, "checkpoint_format", Json::value_t::string, where,
                                              "checkpoint_format"));
    RTNQ_ASSIGN_OR_RETURN(m.gptq_format, ParseGptqFormat(cf->get<std::string>()));
  }
  RTNQ_ASSIGN_OR_RETURN(const Json* tensors,
                        Get(j, "tensors", Json::value_t::object, where, "tensors"));
  for (auto it = tensors->begin(); it != tensors->end(); ++it) {
    const std::string field = absl::StrCat("tensors[\"", it.key(), "\"]");
    if (!it->is_object()) return FieldError(where, field, "is not an object");
    ManifestTensor t;
    t.name = it.key();
    RTNQ_ASSIGN_OR_RETURN(const Json* layer,
                          Get(*it, "layer", Json::value_t::string, where, field));
    t.layer = layer->get<std::string>();
    RTNQ_ASSIGN_OR_RETURN(const Json* dtype,
                          Get(*it, "dtype", Json::value_t::string, where, field));
    RTNQ_ASSIGN_OR_RETURN(t.dtype, ParseElemType(dtype->get<std::string>()));
    RTNQ_ASSIGN_OR_RETURN(const Json* shape, Get(*it, "shape", Json::value_t::array, where, field));
    for (const Json& d : *shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) {
        return FieldError(where, field, absl::StrCat("has a bad shape ", shape->dump()));
      }
      t.shape.push_back(d.get<int64_t>());
    }
    if (const auto db = it->find("decided_by"); db != it->end() && db->is_string()) {
      t.decided_by = db->get<std::string>();
    }
    if (it->contains("expert_layout")) {
      RTNQ_ASSIGN_OR_RETURN(const Json* el,
                            Get(*it, "expert_layout", Json::value_t::string, where, field));
      RTNQ_ASSIGN_OR_RETURN(const ExpertLayout layout, ParseExpertLayout(el->get<std::string>()));
      t.expert_layout = ExpertLayoutName(layout);
    }
    RTNQ_ASSIGN_OR_RETURN(const Json* config,
                          Get(*it, "config", Json::value_t::object, where, field));
    RTNQ_ASSIGN_OR_RETURN(const QuantConfigPatch patch,
                          PatchFromJson(*config, absl::StrCat(std::string(where), ": ", field)));
    patch.ApplyTo(t.config);
    if (absl::Status s = ValidateConfig(t.config); !s.ok()) {
      return FieldError(where, field, std::string(s.message()));
    }
    m.tensors.push_back(std::move(t));
  }
  if (const auto sk = j.find("skipped"); sk != j.end() && sk->is_object()) {
    for (auto it = sk->begin(); it != sk->end(); ++it) {
      m.skipped[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
    }
  }
  return m;
}

}  // namespace rtnq::client
