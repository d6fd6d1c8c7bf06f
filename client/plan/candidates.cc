#include "client/plan/candidates.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/config/config_json.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"

namespace rtnq::client {
namespace {

using nlohmann::ordered_json;

// Candidate files are small; a bigger one is a mistake.
constexpr uint64_t kMaxCandidateFileBytes = 1 << 20;

absl::Status ItemError(std::string_view item, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("candidate \"", std::string(item), "\": ", std::string(what)));
}

// Splits at top-level commas: not inside {}, [] or a JSON string.
absl::StatusOr<std::vector<std::string>> SplitItems(std::string_view list) {
  std::vector<std::string> items;
  std::string cur;
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : list) {
    if (in_string) {
      in_string = !(c == '"' && !escaped);
      escaped = c == '\\' && !escaped;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    } else if (c == ',' && depth == 0) {
      items.push_back(std::string(absl::StripAsciiWhitespace(cur)));
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  items.push_back(std::string(absl::StripAsciiWhitespace(cur)));
  for (const std::string& item : items) {
    if (item.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("candidate list \"", std::string(list), "\" has an empty item"));
    }
  }
  return items;
}

absl::StatusOr<Candidate> ParseShort(const std::string& item) {
  const std::string lower = absl::AsciiStrToLower(item);
  if (lower == "keep" || lower == "fp16" || lower == "bf16" || lower == "fp32") {
    return Candidate{lower, std::nullopt};
  }
  const std::vector<std::string> parts = absl::StrSplit(lower, ':');
  QuantConfig cfg;
  const std::string& type = parts[0];
  int bits = 0;
  if (type.size() == 4 && type.rfind("int", 0) == 0 && absl::SimpleAtoi(type.substr(3), &bits) &&
      bits >= 2 && bits <= 8) {
    cfg.dtype = QuantDtype::kInt;
    cfg.bits = bits;
  } else if (type == "nf4" || type == "fp4" || type == "fp4_e2m1") {
    RTNQ_ASSIGN_OR_RETURN(cfg.dtype, ParseQuantDtype(type));
    cfg.bits = 4;
  } else {
    return ItemError(item, absl::StrCat("unknown type \"", type,
                                        "\" (int2..int8, nf4, fp4, fp4_e2m1, keep, fp16, bf16, "
                                        "a {JSON} config or @FILE)"));
  }
  std::vector<std::string> seen;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& o = parts[i];
    std::string key = o;
    int64_t g = 0;
    double q = 0;
    if (o == "row" || o == "g-1") {
      key = "group";
      cfg.group_size = -1;
    } else if (o.size() > 1 && o[0] == 'g' && absl::SimpleAtoi(o.substr(1), &g)) {
      if (g < 1) return ItemError(item, absl::StrCat("group size must be >= 1 or -1, got ", g));
      key = "group";
      cfg.group_size = g;
    } else if (o == "sym" || o == "asym") {
      if (cfg.dtype != QuantDtype::kInt) {
        return ItemError(item, "sym/asym apply to int types only (nf4/fp4 are absmax-scaled)");
      }
      key = "scheme";
      cfg.scheme = o == "sym" ? Scheme::kSym : Scheme::kAsym;
    } else if (o == "mse") {
      cfg.enable_mse_search = true;
    } else if (o == "fullrange") {
      cfg.enable_full_range = true;
    } else if (o.size() > 1 && o[0] == 'q' && absl::SimpleAtod(o.substr(1), &q)) {
      key = "quantile";
      cfg.quantile = q;
    } else {
      return ItemError(item, absl::StrCat("unknown option \"", o,
                                          "\" (gN, g-1, row, sym, asym, mse, fullrange, qF)"));
    }
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      return ItemError(item, absl::StrCat("the ", key, " is given twice"));
    }
    seen.push_back(key);
  }
  if (absl::Status s = ValidateConfig(cfg); !s.ok())
    return ItemError(item, std::string(s.message()));
  return Candidate{item, cfg};
}

absl::StatusOr<Candidate> ParseObject(const ordered_json& obj, const std::string& item) {
  if (!obj.is_object()) return ItemError(item, "not a JSON object or a short-form string");
  static constexpr std::string_view kSkip[] = {"name"};
  RTNQ_ASSIGN_OR_RETURN(QuantConfigPatch patch, PatchFromJson(obj, "config", kSkip));
  QuantConfig cfg;
  patch.ApplyTo(cfg);
  if (absl::Status s = ValidateConfig(cfg); !s.ok())
    return ItemError(item, std::string(s.message()));
  std::string label = ConfigSummary(cfg);
  if (obj.contains("name")) {
    if (!obj["name"].is_string() || obj["name"].get<std::string>().empty()) {
      return ItemError(item, "\"name\" must be a non-empty string");
    }
    label = obj["name"].get<std::string>();
  }
  if (cfg.dtype == QuantDtype::kFp32) return Candidate{label, std::nullopt};
  return Candidate{label, cfg};
}

absl::Status AddItem(const std::string& item, std::vector<Candidate>& out, bool in_file);

absl::Status AddFile(const std::string& item, std::vector<Candidate>& out) {
  const std::string path = item.substr(1);
  absl::StatusOr<std::string> read = ReadFileToString(path, kMaxCandidateFileBytes);
  if (!read.ok()) {
    return absl::Status(read.status().code(),
                        absl::StrCat("candidate \"", item, "\": ", read.status().message()));
  }
  const std::string& text = *read;
  RTNQ_ASSIGN_OR_RETURN(const ordered_json j, ParseStrictJson(text, path));
  if (!j.is_array()) {
    RTNQ_ASSIGN_OR_RETURN(Candidate c, ParseObject(j, item));
    out.push_back(std::move(c));
    return absl::OkStatus();
  }
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string where = absl::StrCat(path, "[", i, "]");
    if (j[i].is_string()) {
      RTNQ_RETURN_IF_ERROR(AddItem(j[i].get<std::string>(), out, /*in_file=*/true));
    } else {
      RTNQ_ASSIGN_OR_RETURN(Candidate c, ParseObject(j[i], where));
      out.push_back(std::move(c));
    }
  }
  return absl::OkStatus();
}

absl::Status AddItem(const std::string& item, std::vector<Candidate>& out, bool in_file) {
  if (item.front() == '@') {
    if (in_file) return ItemError(item, "a candidate file cannot name another file");
    return AddFile(item, out);
  }
  if (item.front() == '{') {
    RTNQ_ASSIGN_OR_RETURN(const ordered_json j,
                          ParseStrictJson(item, absl::StrCat("candidate ", item)));
    RTNQ_ASSIGN_OR_RETURN(Candidate c, ParseObject(j, item));
    out.push_back(std::move(c));
    return absl::OkStatus();
  }
  RTNQ_ASSIGN_OR_RETURN(Candidate c, ParseShort(item));
  out.push_back(std::move(c));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<Candidate>> ParseCandidates(std::string_view list) {
  if (absl::StripAsciiWhitespace(absl::string_view(list.data(), list.size())).empty()) {
    return absl::InvalidArgumentError("the candidate list is empty");
  }
  RTNQ_ASSIGN_OR_RETURN(const std::vector<std::string> items, SplitItems(list));
  std::vector<Candidate> out;
  for (const std::string& item : items) {
    RTNQ_RETURN_IF_ERROR(AddItem(item, out, /*in_file=*/false));
    if (out.size() > kMaxCandidates) {
      return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxCandidates,
                                                     " candidates (each one quantizes every "
                                                     "tensor once)"));
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (out[i].config == out[j].config || out[i].label == out[j].label) {
        return ItemError(out[i].label, absl::StrCat("duplicates candidate \"", out[j].label, "\""));
      }
    }
  }
  return out;
}

}  // namespace rtnq::client
