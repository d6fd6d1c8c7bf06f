#include "client/tensor_selection.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/expert_layout.h"
#include "core/io/safetensors_header.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

// A resolver whose entries are the patterns: Resolve() tells whether and how a name matches.
absl::StatusOr<std::unique_ptr<WeightConfigResolver>> Matcher(std::vector<std::string> patterns,
                                                              std::string_view flag) {
  if (patterns.empty()) return nullptr;
  std::vector<WeightConfigEntry> entries;
  std::set<std::string> seen;
  for (std::string& p : patterns) {
    if (seen.insert(p).second) entries.push_back(WeightConfigEntry{std::move(p), {}});
  }
  absl::StatusOr<WeightConfigResolver> r = WeightConfigResolver::Create({}, std::move(entries));
  if (!r.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(flag), ": ", r.status().message()));
  }
  return std::make_unique<WeightConfigResolver>(*std::move(r));
}

bool Matched(const ResolvedConfig& r) { return !r.decided_by.empty(); }
bool Exact(const ResolvedConfig& r) { return r.match_kind == "tensor" || r.match_kind == "layer"; }

}  // namespace

TensorSelection::TensorSelection() = default;
TensorSelection::TensorSelection(TensorSelection&&) noexcept = default;
TensorSelection& TensorSelection::operator=(TensorSelection&&) noexcept = default;
TensorSelection::~TensorSelection() = default;

absl::StatusOr<TensorSelection> TensorSelection::Create(std::vector<std::string> include,
                                                        std::vector<std::string> exclude) {
  TensorSelection s;
  RTNQ_ASSIGN_OR_RETURN(s.include_, Matcher(std::move(include), "--include"));
  RTNQ_ASSIGN_OR_RETURN(s.exclude_, Matcher(std::move(exclude), "--exclude"));
  return s;
}

absl::StatusOr<TensorDecision> TensorSelection::Decide(std::string_view name, ElemType dtype,
                                                       const std::vector<int64_t>& shape,
                                                       const WeightConfigResolver& resolver,
                                                       bool stacked_experts) const {
  TensorDecision d;
  const std::string n(name);
  std::string unquantizable;
  if (!IsQuantizableFloat(dtype)) {
    unquantizable = absl::StrCat("dtype ", ElemTypeName(dtype));
  } else if (shape.size() != 2 && !stacked_experts) {
    unquantizable = absl::StrCat(shape.size(), "-D ", ShapeString(shape));
  }
  if (include_ != nullptr) {
    RTNQ_ASSIGN_OR_RETURN(const ResolvedConfig inc, include_->Resolve(name));
    if (!Matched(inc)) {
      d.reason = "not matched by --include";
      return d;
    }
    if (!unquantizable.empty()) {
      if (Exact(inc)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor \"", n, "\" is named by --include \"", inc.decided_by,
            "\" but cannot be quantized: ", unquantizable, " (only 2-D F32/F16/BF16 weights can)"));
      }
      d.reason = absl::StrCat(unquantizable, " (matched --include \"", inc.decided_by, "\")");
      return d;
    }
  } else {
    if (!unquantizable.empty()) {
      d.reason = unquantizable;
      return d;
    }
    if (!absl::EndsWith(n, ".weight") && !stacked_experts) {
      d.reason = "not a .weight";
      return d;
    }
  }
  RTNQ_ASSIGN_OR_RETURN(d.resolved, resolver.Resolve(name));
  d.action = TensorAction::kSkip;
  if (exclude_ != nullptr) {
    RTNQ_ASSIGN_OR_RETURN(const ResolvedConfig ex, exclude_->Resolve(name));
    if (Matched(ex)) {
      d.excluded_by_rule = true;
      d.reason = absl::StrCat("matched --exclude \"", ex.decided_by, "\"");
      return d;
    }
  }
  if (include_ == nullptr && !Exact(d.resolved)) {
    for (const char* part : {"embed", "lm_head", "norm"}) {
      if (absl::StrContains(n, part)) {
        d.excluded_by_rule = true;
        d.reason = absl::StrCat("name contains \"", part,
                                "\": kept by default (name it in weight_config or --include)");
        return d;
      }
    }
    if (IsMoeRouter(n)) {
      d.excluded_by_rule = true;
      d.reason =
          "MoE router: kept in float by default, as inference engines load it (name it in "
          "weight_config or --include)";
      return d;
    }
  }
  if (d.resolved.config.dtype == QuantDtype::kFp32) {
    d.reason = absl::StrCat("dtype fp32 by ", DecidedByText(d.resolved));
    return d;
  }
  d.action = TensorAction::kQuantize;
  return d;
}

std::string DecidedByText(const ResolvedConfig& r) {
  if (r.decided_by.empty()) return "default";
  return absl::StrCat(r.match_kind, " \"", r.decided_by, "\"");
}

std::vector<std::string> SplitPatternList(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& v : values) {
    std::string cur;
    int depth = 0;
    for (char c : v) {
      if (c == '{') ++depth;
      if (c == '}' && depth > 0) --depth;
      if (c == ',' && depth == 0) {
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
        continue;
      }
      cur.push_back(c);
    }
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

}  // namespace rtnq::client
