#include "client/plan/plan_report.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/checkpoint_util.h"
#include "client/report.h"
#include "core/io/safetensors_header.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

using Json = nlohmann::ordered_json;

double Bpw(uint64_t bytes, uint64_t elements) {
  return elements == 0 ? 0.0 : 8.0 * static_cast<double>(bytes) / static_cast<double>(elements);
}

std::string Db(double v) { return absl::StrFormat("%.2f", v); }

double Gbps(uint64_t bytes, double seconds) { return seconds > 0 ? bytes / seconds / 1e9 : 0; }

std::string Budget(const PlanRequest& r) {
  std::vector<std::string> parts;
  if (r.target_bpw) parts.push_back(absl::StrFormat("%g bits per weight", *r.target_bpw));
  if (r.target_size) parts.push_back(absl::StrCat(*r.target_size, " bytes of files"));
  if (r.min_snr_db) parts.push_back(absl::StrFormat("SNR >= %g dB per tensor", *r.min_snr_db));
  return absl::StrJoin(parts, ", ");
}

}  // namespace

std::string PlanText(const PlanRequest& r, const PlanOutcome& p) {
  size_t width = 6;
  for (const PlannedChoice& c : p.tensors) width = std::max(width, c.name.size());
  std::string out = absl::StrFormat("%-*s  %-14s  %-16s  %12s  %7s  %8s  %11s\n", width, "tensor",
                                    "shape", "choice", "bytes", "bpw", "SNR dB", "error");
  std::map<int, int> counts;
  for (const PlannedChoice& c : p.tensors) {
    ++counts[c.candidate];
    absl::StrAppendFormat(&out, "%-*s  %-14s  %-16s  %12d  %7.4f  %8s  %11.4e\n", width, c.name,
                          ShapeString(c.shape), r.candidates[c.candidate].label, c.bytes,
                          Bpw(c.bytes, c.elements), Db(c.measure.snr_db), c.measure.error);
  }
  std::vector<std::string> mix;
  for (const auto& [k, n] : counts) mix.push_back(absl::StrCat(r.candidates[k].label, " x", n));
  absl::StrAppendFormat(&out, "\nplan: %s (budget: %s, objective: %s)\n", absl::StrJoin(mix, ", "),
                        Budget(r), r.objective == PlanObjective::kError ? "error" : "snr");
  absl::StrAppendFormat(&out,
                        "selected: %d tensors, %d weights -> %d bytes (%s) = %.4f bits per "
                        "weight\n",
                        p.tensors.size(), p.selected_elements, p.selected_bytes,
                        HumanBytes(p.selected_bytes), p.bits_per_weight);
  absl::StrAppendFormat(&out, "error: %.6e (%s), size-weighted mean SNR %s dB\n", p.total_error,
                        p.importance == "none" ? "unweighted" : p.importance, Db(p.snr_mean_db));
  for (const UniformChoice& u : p.uniform) {
    if (!u.possible) {
      absl::StrAppendFormat(&out, "uniform %s: not possible for every tensor\n",
                            r.candidates[u.candidate].label);
      continue;
    }
    absl::StrAppendFormat(&out, "uniform %s: %.4f bits per weight, error %.6e, mean SNR %s dB\n",
                          r.candidates[u.candidate].label, Bpw(u.bytes, p.selected_elements),
                          u.error, Db(u.snr_mean_db));
  }
  for (const auto& [name, bytes] : p.files) {
    absl::StrAppendFormat(&out, "predicted file %s: %d bytes (%s)\n", name, bytes,
                          HumanBytes(bytes));
  }
  absl::StrAppendFormat(&out, "predicted output (%s format): %d bytes (%s)\n",
                        OutputLayoutName(r.format), p.predicted_bytes,
                        HumanBytes(p.predicted_bytes));
  absl::StrAppendFormat(
      &out, "measured %s in %.2f s (%.2f GB/s) on %s; solved in %.3f s (%d states)\n",
      HumanBytes(p.measured_bytes), p.measure_seconds, Gbps(p.measured_bytes, p.measure_seconds),
      p.measured_by, p.solve_seconds, p.solver_states);
  return out;
}

Json PlanReportJson(const PlanRequest& r, const PlanOutcome& p) {
  Json labels = Json::array();
  for (const Candidate& c : r.candidates) labels.push_back(c.label);
  Json budget = Json::object();
  if (r.target_bpw) budget["target_bpw"] = *r.target_bpw;
  if (r.target_size) budget["target_size"] = *r.target_size;
  if (r.min_snr_db) budget["min_snr_db"] = *r.min_snr_db;
  if (p.budget_bytes > 0) budget["selected_bytes_budget"] = p.budget_bytes;
  Json files = Json::array();
  for (const auto& [name, bytes] : p.files) files.push_back({{"name", name}, {"bytes", bytes}});
  Json summary = {{"input", r.input},
                  {"format", OutputLayoutName(r.format)},
                  {"candidates", labels},
                  {"objective", r.objective == PlanObjective::kError ? "error" : "snr"},
                  {"importance", p.importance},
                  {"budget", budget},
                  {"selected_tensors", p.tensors.size()},
                  {"selected_elements", p.selected_elements},
                  {"selected_bytes", p.selected_bytes},
                  {"bits_per_weight", p.bits_per_weight},
                  {"total_error", JsonNumber(p.total_error)},
                  {"snr_mean_db", JsonNumber(p.snr_mean_db)},
                  {"predicted_bytes", p.predicted_bytes},
                  {"files", files},
                  {"measured_by", p.measured_by},
                  {"measured_bytes", p.measured_bytes},
                  {"measure_seconds", p.measure_seconds},
                  {"measure_gb_per_s", Gbps(p.measured_bytes, p.measure_seconds)},
                  {"solve_seconds", p.solve_seconds},
                  {"solver_states", p.solver_states}};
  Json tensors = Json::array();
  for (const PlannedChoice& c : p.tensors) {
    tensors.push_back({{"name", c.name},
                       {"group", c.group},
                       {"shape", c.shape},
                       {"dtype", ElemTypeName(c.dtype)},
                       {"elements", c.elements},
                       {"choice", r.candidates[c.candidate].label},
                       {"bytes", c.bytes},
                       {"bits_per_weight", Bpw(c.bytes, c.elements)},
                       {"snr_db", JsonNumber(c.measure.snr_db)},
                       {"mse", c.measure.mse},
                       {"error", c.measure.error},
                       {"importance", c.importance}});
  }
  Json uniform = Json::array();
  for (const UniformChoice& u : p.uniform) {
    Json j = {{"candidate", r.candidates[u.candidate].label}, {"possible", u.possible}};
    if (u.possible) {
      j["bytes"] = u.bytes;
      j["bits_per_weight"] = Bpw(u.bytes, p.selected_elements);
      j["error"] = u.error;
      j["snr_mean_db"] = JsonNumber(u.snr_mean_db);
    }
    uniform.push_back(j);
  }
  return {{"summary", summary}, {"tensors", tensors}, {"uniform", uniform}};
}

}  // namespace rtnq::client
