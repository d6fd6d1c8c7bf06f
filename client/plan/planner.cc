#include "client/plan/planner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/checkpoint_util.h"
#include "client/plan/predict.h"
#include "client/plan/solver.h"
#include "client/run_plan.h"
#include "client/tensor_selection.h"
#include "core/config/config_json.h"
#include "core/layout/fused_groups.h"
#include "core/layout/output_plan.h"
#include "core/status_macros.h"

namespace rtnq::client {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;

// The SNR objective counts an exact result (and anything above) as this many dB.
constexpr double kSnrCap = 300;
// Re-solves of --target-size while headers and side tensors settle.
constexpr int kSizeRounds = 16;

double Seconds(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

uint64_t TensorBytes(const TensorInfo& t) {
  return static_cast<uint64_t>(t.num_elements) * ElemSize(t.dtype);
}

std::string Bpw(uint64_t bytes, uint64_t elements) {
  return absl::StrFormat("%.4f", elements == 0 ? 0.0 : 8.0 * bytes / elements);
}

// A candidate's weight_config entry: dtype, bits, group size (and scheme for int) always, any
// other field only where it differs from the session default (entries patch the default).
ordered_json EntryFor(const Candidate& c, const QuantConfig& session_default) {
  if (c.keep()) return {{"dtype", "fp32"}};
  const ordered_json full = ConfigToJsonValue(*c.config);
  const ordered_json base = ConfigToJsonValue(session_default);
  ordered_json entry;
  for (const auto& [key, value] : full.items()) {
    const bool always = key == "dtype" || key == "bits" || key == "group_size" ||
                        (key == "scheme" && c.config->dtype == QuantDtype::kInt);
    if (always || base[key] != value) entry[key] = value;
  }
  return entry;
}

// Everything MakePlan knows about the checkpoint and the candidates before solving.
struct Problem {
  InputCheckpoint in;
  QuantConfig session_default;
  ordered_json base_config;
  std::vector<const TensorInfo*> selected;
  std::vector<std::string> left_out;  // default selection quantizes them, the request does not
  std::vector<std::vector<size_t>> groups;
  std::vector<int> group_of;                               // per selected tensor
  std::vector<std::vector<std::optional<uint64_t>>> cost;  // [tensor][candidate]
  std::vector<std::vector<std::string>> why_not;           // reason when cost is unset
  std::vector<TensorImportance> importance;
  std::vector<std::vector<std::optional<CandidateMeasure>>> measure;  // [tensor][candidate]
  uint64_t elements = 0;
};

absl::StatusOr<Problem> Select(const PlanRequest& r) {
  Problem p;
  RTNQ_ASSIGN_OR_RETURN(p.in, OpenInput(r.input));
  RTNQ_ASSIGN_OR_RETURN(p.base_config, ParseStrictJson(r.config_json, "config"));
  RTNQ_ASSIGN_OR_RETURN(const WeightConfigResolver resolver, ParseSessionConfigJson(r.config_json));
  p.session_default = resolver.default_config();
  RTNQ_ASSIGN_OR_RETURN(const TensorSelection selection,
                        TensorSelection::Create(r.include, r.exclude));
  RTNQ_ASSIGN_OR_RETURN(const TensorSelection by_default, TensorSelection::Create({}, {}));
  const bool custom = !r.include.empty() || !r.exclude.empty();
  for (const TensorInfo* t : FileOrder(p.in.checkpoint)) {
    RTNQ_ASSIGN_OR_RETURN(const TensorDecision d,
                          selection.Decide(t->name, t->dtype, t->shape, resolver));
    if (d.action == TensorAction::kQuantize) {
      p.selected.push_back(t);
      p.elements += static_cast<uint64_t>(t->num_elements);
    } else if (custom) {
      RTNQ_ASSIGN_OR_RETURN(const TensorDecision dd,
                            by_default.Decide(t->name, t->dtype, t->shape, resolver));
      if (dd.action == TensorAction::kQuantize) p.left_out.push_back(t->name);
    }
  }
  if (p.selected.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nothing to plan: no tensor of ", r.input, " is selected for quantization"));
  }
  return p;
}

absl::Status Cost(const PlanRequest& r, Problem& p) {
  OutputLayoutOptions layout;
  layout.layout = r.format;
  layout.compression_dim = r.compression_dim;
  layout.gptq_format = r.gptq_format.value_or(GptqFormat::kV1);
  const size_t K = r.candidates.size();
  p.cost.assign(p.selected.size(), std::vector<std::optional<uint64_t>>(K));
  p.why_not.assign(p.selected.size(), std::vector<std::string>(K));
  for (size_t i = 0; i < p.selected.size(); ++i) {
    const TensorInfo& t = *p.selected[i];
    for (size_t k = 0; k < K; ++k) {
      const Candidate& c = r.candidates[k];
      if (c.keep()) {
        p.cost[i][k] = TensorBytes(t);
        continue;
      }
      // The planner that lays out the real output files prices every format.
      absl::StatusOr<std::vector<TensorSpec>> specs =
          PlanQuantizedOutputs(t.name, t.dtype, t.shape, *c.config, layout);
      if (!specs.ok()) {
        p.why_not[i][k] = std::string(specs.status().message());
        continue;
      }
      p.cost[i][k] = SpecsBytes(*specs);
    }
  }
  std::vector<std::string> names;
  for (const TensorInfo* t : p.selected) names.push_back(t->name);
  p.groups = GroupFusedTensors(names);
  p.group_of.assign(names.size(), 0);
  for (size_t g = 0; g < p.groups.size(); ++g) {
    for (size_t i : p.groups[g]) p.group_of[i] = static_cast<int>(g);
  }
  // A candidate one member cannot take is out for the whole group.
  for (const std::vector<size_t>& g : p.groups) {
    bool any = false;
    for (size_t k = 0; k < K; ++k) {
      bool all = true;
      for (size_t i : g) all &= p.cost[i][k].has_value();
      if (!all) {
        for (size_t i : g) {
          if (p.cost[i][k].has_value()) {
            p.why_not[i][k] = "a tensor fused with it cannot take it";
            p.cost[i][k].reset();
          }
        }
      }
      any |= all;
    }
    if (!any) {
      const size_t i = g.front();
      std::string why;
      for (size_t k = 0; k < K; ++k) {
        absl::StrAppend(&why, "; ", r.candidates[k].label, ": ", p.why_not[i][k]);
      }
      return absl::InvalidArgumentError(absl::StrCat("no candidate applies to tensor \"", names[i],
                                                     "\" in format ", OutputLayoutName(r.format),
                                                     why));
    }
  }
  return absl::OkStatus();
}

absl::Status Measure(const PlanRequest& r, Problem& p, Measurer& measurer,
                     const Importance& importance, const PlanProgress& progress, PlanOutcome& out) {
  if (importance.per_element() && !measurer.SupportsElementWeights()) {
    return absl::InvalidArgumentError(absl::StrCat(
        importance.description(),
        ": per-element weights are not sent to servers (only "
        "per-column sums come back); measure locally (without --server) or use --imatrix"));
  }
  RTNQ_ASSIGN_OR_RETURN(p.importance, importance.Match(p.selected));
  const size_t K = r.candidates.size();
  p.measure.assign(p.selected.size(), std::vector<std::optional<CandidateMeasure>>(K));
  std::vector<MeasureRequest> requests;
  std::vector<size_t> tensor_of;
  for (size_t i = 0; i < p.selected.size(); ++i) {
    MeasureRequest req{p.selected[i], &p.importance[i], {}};
    for (size_t k = 0; k < K; ++k) {
      if (!p.cost[i][k].has_value()) continue;
      if (r.candidates[k].keep()) {
        p.measure[i][k] = CandidateMeasure{0, 0, std::numeric_limits<double>::infinity()};
      } else {
        req.candidates.push_back(k);
      }
    }
    if (req.candidates.empty()) continue;
    out.measured_bytes += TensorBytes(*p.selected[i]);
    requests.push_back(std::move(req));
    tensor_of.push_back(i);
  }
  std::vector<std::vector<CandidateMeasure>> measured;
  size_t done = 0;
  const Clock::time_point start = Clock::now();
  RTNQ_RETURN_IF_ERROR(measurer.Measure(requests, r.candidates, measured, [&](size_t req) {
    if (progress) progress(++done, requests.size(), requests[req].tensor->name);
  }));
  out.measure_seconds = Seconds(start);
  out.measured_by = measurer.Describe();
  for (size_t q = 0; q < requests.size(); ++q) {
    for (size_t j = 0; j < requests[q].candidates.size(); ++j) {
      p.measure[tensor_of[q]][requests[q].candidates[j]] = measured[q][j];
    }
  }
  return absl::OkStatus();
}

// The solver's items: one per group, options the candidates every member can take (and, with
// --min-snr, that reach it on every member).
absl::StatusOr<std::vector<SolverItem>> Items(const PlanRequest& r, const Problem& p) {
  std::vector<SolverItem> items;
  for (const std::vector<size_t>& g : p.groups) {
    std::vector<std::vector<std::optional<SolverOption>>> members;
    for (size_t i : g) {
      std::vector<std::optional<SolverOption>> options(r.candidates.size());
      for (size_t k = 0; k < options.size(); ++k) {
        const std::optional<CandidateMeasure>& m = p.measure[i][k];
        if (!m.has_value() || (r.min_snr_db && m->snr_db < *r.min_snr_db)) continue;
        const double objective = r.objective == PlanObjective::kError
                                     ? m->error
                                     : static_cast<double>(p.selected[i]->num_elements) *
                                           (kSnrCap - std::min(m->snr_db, kSnrCap));
        options[k] = SolverOption{*p.cost[i][k], objective, static_cast<int>(k)};
      }
      members.push_back(std::move(options));
    }
    items.push_back(GroupItem(members));
    if (!items.back().options.empty()) continue;
    // Only a --min-snr floor can leave a group without options here: name the weakest member.
    std::string detail;
    for (size_t i : g) {
      double best = -std::numeric_limits<double>::infinity();
      std::string best_label;
      for (size_t k = 0; k < r.candidates.size(); ++k) {
        if (p.measure[i][k].has_value() && p.measure[i][k]->snr_db > best) {
          best = p.measure[i][k]->snr_db;
          best_label = r.candidates[k].label;
        }
      }
      if (r.min_snr_db && best < *r.min_snr_db) {
        detail = absl::StrFormat("tensor \"%s\" reaches at most %.2f dB (with %s)",
                                 p.selected[i]->name, best, best_label);
        break;
      }
    }
    if (detail.empty()) detail = absl::StrCat("tensor \"", p.selected[g.front()]->name, "\"");
    return absl::InvalidArgumentError(absl::StrFormat(
        "no candidate reaches --min-snr %.2f dB on every tensor of its group: %s; add a "
        "higher-precision candidate (e.g. keep)",
        r.min_snr_db.value_or(0), detail));
  }
  return items;
}

// The config a choice gives, and what quantizing with it will write.
struct Layout {
  ordered_json config;
  std::vector<std::pair<std::string, uint64_t>> files;
  uint64_t total = 0;
};

absl::StatusOr<Layout> LayOut(const PlanRequest& r, const Problem& p,
                              const std::vector<int>& choice) {
  Layout out;
  out.config = p.base_config;
  if (!out.config.contains("weight_config")) out.config["weight_config"] = ordered_json::object();
  ordered_json& wc = out.config["weight_config"];
  for (const std::string& name : p.left_out) wc[name] = {{"dtype", "fp32"}};
  for (size_t i = 0; i < p.selected.size(); ++i) {
    wc[p.selected[i]->name] = EntryFor(r.candidates[choice[i]], p.session_default);
  }
  const std::string text = out.config.dump();
  RTNQ_ASSIGN_OR_RETURN(const WeightConfigResolver resolver, ParseSessionConfigJson(text));
  RTNQ_ASSIGN_OR_RETURN(const TensorSelection selection, TensorSelection::Create({}, {}));
  PlanOptions po;
  po.output_name = "model.safetensors";
  po.format = r.format;
  po.gptq_format = r.gptq_format;
  po.compression_dim = r.compression_dim;
  RTNQ_ASSIGN_OR_RETURN(const RunPlan plan, PlanRun(p.in, r.input, resolver, selection, po));
  // The config must make quantize do exactly what was chosen, at the bytes the solver counted.
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < p.selected.size(); ++i) index[p.selected[i]->name] = i;
  for (const PlannedTensor& t : plan.tensors) {
    auto it = index.find(t.tensor->name);
    const bool quantized = t.decision.action == TensorAction::kQuantize;
    bool ok = it != index.end() || !quantized;
    if (it != index.end()) {
      const Candidate& c = r.candidates[choice[it->second]];
      ok = c.keep() ? !quantized : quantized && t.decision.resolved.config == *c.config;
      ok = ok && PlannedTensorBytes(t) == *p.cost[it->second][choice[it->second]];
    }
    if (!ok) {
      return absl::InternalError(
          absl::StrCat("plan self-check: the written config does not "
                       "reproduce the choice for tensor \"",
                       t.tensor->name, "\""));
    }
  }
  RTNQ_ASSIGN_OR_RETURN(out.files, PredictFileSizes(plan));
  for (const auto& f : out.files) out.total += f.second;
  return out;
}

std::vector<int> Choice(const std::vector<SolverItem>& items, const SolverResult& s,
                        const Problem& p) {
  std::vector<int> choice(p.selected.size(), 0);
  for (size_t g = 0; g < items.size(); ++g) {
    for (size_t i : p.groups[g]) choice[i] = items[g].options[s.option[g]].tag;
  }
  return choice;
}

absl::Status Infeasible(const PlanRequest& r, const std::string& what, uint64_t least_bytes,
                        uint64_t elements) {
  return absl::OutOfRangeError(absl::StrCat(
      what, " is below the smallest plan the candidates allow: ", least_bytes, " bytes (",
      Bpw(least_bytes, elements), " bits per weight)",
      r.format == OutputLayout::kFake
          ? "; with --format fake every config costs the stored size: plan for a packed format"
          : ""));
}

double MeanSnr(const std::vector<std::pair<uint64_t, double>>& weighted) {
  double num = 0, den = 0;
  for (const auto& [n, snr] : weighted) {
    if (std::isinf(snr)) return snr;
    num += static_cast<double>(n) * snr;
    den += static_cast<double>(n);
  }
  return den == 0 ? 0 : num / den;
}

}  // namespace

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  std::string s = absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())));
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"tib", 1ull << 40}, {"gib", 1ull << 30}, {"mib", 1ull << 20},
      {"kib", 1ull << 10}, {"t", 1ull << 40},   {"g", 1ull << 30},
      {"m", 1ull << 20},   {"k", 1ull << 10},   {"b", 1}};
  uint64_t unit = 1;
  for (const auto& [suffix, scale] : kUnits) {
    const std::string_view sv(suffix);
    if (s.size() > sv.size() && s.compare(s.size() - sv.size(), sv.size(), sv) == 0) {
      s.resize(s.size() - sv.size());
      unit = scale;
      break;
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(s, &value) || !std::isfinite(value) || value <= 0 ||
      value * static_cast<double>(unit) >= 1.8e19) {
    return absl::InvalidArgumentError(absl::StrCat(
        "size \"", std::string(text), "\" is not a positive number of bytes (units k, m, g, t)"));
  }
  return static_cast<uint64_t>(std::floor(value * static_cast<double>(unit)));
}

absl::StatusOr<PlanOutcome> MakePlan(const PlanRequest& r, Measurer& measurer,
                                     const Importance& importance, const PlanProgress& progress) {
  if (r.candidates.empty()) return absl::InvalidArgumentError("no candidates to choose from");
  if (!r.target_bpw && !r.target_size && !r.min_snr_db) {
    return absl::InvalidArgumentError("give a budget: --target-bpw, --target-size or --min-snr");
  }
  if (r.target_bpw && (!std::isfinite(*r.target_bpw) || *r.target_bpw <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target-bpw must be a positive number, got ", *r.target_bpw));
  }
  if (r.min_snr_db && !std::isfinite(*r.min_snr_db)) {
    return absl::InvalidArgumentError("--min-snr must be a finite number of dB");
  }
  PlanOutcome out;
  out.importance = importance.description();
  RTNQ_ASSIGN_OR_RETURN(Problem p, Select(r));
  RTNQ_RETURN_IF_ERROR(Cost(r, p));
  RTNQ_RETURN_IF_ERROR(Measure(r, p, measurer, importance, progress, out));
  RTNQ_ASSIGN_OR_RETURN(const std::vector<SolverItem> items, Items(r, p));

  const Clock::time_point start = Clock::now();
  const uint64_t least = MinimumBytes(items);
  std::optional<uint64_t> budget;
  if (r.target_bpw) {
    budget =
        static_cast<uint64_t>(std::floor(static_cast<long double>(*r.target_bpw) * p.elements / 8));
    if (*budget < least) {
      return Infeasible(r, absl::StrCat("--target-bpw ", *r.target_bpw), least, p.elements);
    }
  }
  auto solve = [&](std::optional<uint64_t> b) -> absl::StatusOr<SolverResult> {
    if (!b.has_value()) return MinimizeBytes(items);
    return MinimizeError(items, *b, {.max_states = r.max_solver_states});
  };
  RTNQ_ASSIGN_OR_RETURN(SolverResult solution, solve(budget));
  RTNQ_ASSIGN_OR_RETURN(Layout layout, LayOut(r, p, Choice(items, solution, p)));
  if (r.target_size) {
    // The solver counts the selected tensors' bytes; headers and the other tensors come on
    // top. Solve, lay out, and shrink the data budget by any overshoot until the files fit.
    const SolverResult smallest = MinimizeBytes(items);
    RTNQ_ASSIGN_OR_RETURN(const Layout small, LayOut(r, p, Choice(items, smallest, p)));
    if (small.total > *r.target_size) {
      return Infeasible(r, absl::StrCat("--target-size ", *r.target_size), small.total, p.elements);
    }
    uint64_t data = *r.target_size - (small.total - smallest.bytes);
    if (budget.has_value()) data = std::min(data, *budget);
    for (int round = 0;; ++round) {
      RTNQ_ASSIGN_OR_RETURN(solution, solve(data));
      RTNQ_ASSIGN_OR_RETURN(layout, LayOut(r, p, Choice(items, solution, p)));
      if (layout.total <= *r.target_size) break;
      if (round == kSizeRounds) {  // not seen in practice; the smallest plan always fits
        solution = smallest;
        layout = small;
        break;
      }
      data =
          std::max(least, solution.bytes - std::min(solution.bytes, layout.total - *r.target_size));
    }
    budget = data;
  }
  out.solve_seconds = Seconds(start);
  out.solver_states = solution.states;
  out.budget_bytes = budget.value_or(0);

  const std::vector<int> choice = Choice(items, solution, p);
  std::vector<std::pair<uint64_t, double>> snrs;
  for (size_t i = 0; i < p.selected.size(); ++i) {
    const TensorInfo& t = *p.selected[i];
    PlannedChoice c;
    c.name = t.name;
    if (std::optional<FusedGroup> g = FusedGroupOf(t.name)) c.group = g->name;
    c.shape = t.shape;
    c.dtype = t.dtype;
    c.elements = static_cast<uint64_t>(t.num_elements);
    c.candidate = choice[i];
    c.bytes = *p.cost[i][choice[i]];
    c.measure = *p.measure[i][choice[i]];
    c.importance = p.importance[i].source;
    out.selected_bytes += c.bytes;
    out.total_error += c.measure.error;
    snrs.emplace_back(c.elements, c.measure.snr_db);
    out.tensors.push_back(std::move(c));
  }
  out.selected_elements = p.elements;
  out.bits_per_weight = 8.0 * out.selected_bytes / p.elements;
  out.snr_mean_db = MeanSnr(snrs);
  out.config = std::move(layout.config);
  out.files = std::move(layout.files);
  out.predicted_bytes = layout.total;
  for (size_t k = 0; k < r.candidates.size(); ++k) {
    UniformChoice u;
    u.candidate = static_cast<int>(k);
    u.possible = true;
    std::vector<std::pair<uint64_t, double>> us;
    for (size_t i = 0; i < p.selected.size() && u.possible; ++i) {
      u.possible = p.measure[i][k].has_value();
      if (!u.possible) break;
      u.bytes += *p.cost[i][k];
      u.error += p.measure[i][k]->error;
      us.emplace_back(p.selected[i]->num_elements, p.measure[i][k]->snr_db);
    }
    if (u.possible) u.snr_mean_db = MeanSnr(us);
    out.uniform.push_back(u);
  }
  return out;
}

}  // namespace rtnq::client
