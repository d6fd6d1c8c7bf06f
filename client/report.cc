#include "client/report.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/checkpoint_util.h"
#include "core/config/config_json.h"
#include "core/status_macros.h"

namespace rtnq::client {

using Json = nlohmann::ordered_json;

Json JsonNumber(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

double JsonToDouble(const Json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s == "inf") return INFINITY;
    if (s == "-inf") return -INFINITY;
  }
  return NAN;
}

void Summarize(const std::vector<TensorReport>& tensors, RunSummary& s) {
  s.quantized = s.skipped = s.copied = s.consumed = s.resumed = 0;
  double sum = 0;
  std::vector<std::pair<std::string, double>> snrs;
  for (const TensorReport& t : tensors) {
    if (t.action == "quantized") {
      ++s.quantized;
      sum += t.metrics.snr_db;
      snrs.emplace_back(t.name, t.metrics.snr_db);
    } else if (t.action == "skipped") {
      ++s.skipped;
    } else if (t.action == "consumed") {
      ++s.consumed;
    } else {
      ++s.copied;
    }
    s.resumed += t.resumed;
  }
  s.snr_mean_db = s.quantized > 0 ? sum / s.quantized : 0;
  std::stable_sort(snrs.begin(), snrs.end(),
                   [](const auto& a, const auto& b) { return a.second < b.second; });
  if (snrs.size() > 3) snrs.resize(3);
  s.worst = std::move(snrs);
}

Json TensorReportToJson(const TensorReport& t) {
  Json j;
  j["name"] = t.name;
  j["action"] = t.action;
  j["dtype"] = t.dtype;
  j["shape"] = t.shape;
  if (!t.reason.empty()) j["reason"] = t.reason;
  j["bytes_in"] = t.bytes_in;
  j["bytes_out"] = t.bytes_out;
  if (t.action != "quantized") return j;
  j["config"] = ConfigToJsonValue(t.config);
  j["decided_by"] = t.decided_by;
  const TensorMetrics& m = t.metrics;
  j["metrics"] =
      Json{{"elements", m.elements},         {"groups", m.groups},
           {"mse", JsonNumber(m.mse)},       {"max_abs_error", JsonNumber(m.max_abs_error)},
           {"snr_db", JsonNumber(m.snr_db)}, {"clip_ratio", JsonNumber(m.clip_ratio)}};
  j["timings"] = Json{{"quantize_seconds", m.seconds},
                      {"server_seconds", t.server_seconds},
                      {"wall_seconds", t.wall_seconds}};
  j["served_by"] = t.served_by;
  j["attempts"] = t.attempts;
  if (t.resumed) j["resumed"] = true;
  return j;
}

absl::StatusOr<TensorReport> TensorReportFromJson(const Json& j) {
  TensorReport t;
  try {
    t.name = j.at("name").get<std::string>();
    t.action = j.at("action").get<std::string>();
    t.dtype = j.at("dtype").get<std::string>();
    t.shape = j.at("shape").get<std::vector<int64_t>>();
    if (j.contains("reason")) t.reason = j["reason"].get<std::string>();
    t.bytes_in = j.at("bytes_in").get<uint64_t>();
    t.bytes_out = j.at("bytes_out").get<uint64_t>();
    if (t.action == "quantized") {
      RTNQ_ASSIGN_OR_RETURN(const QuantConfigPatch patch, PatchFromJson(j.at("config"), "report"));
      patch.ApplyTo(t.config);
      t.decided_by = j.at("decided_by").get<std::string>();
      const Json& m = j.at("metrics");
      t.metrics.elements = m.at("elements").get<int64_t>();
      t.metrics.groups = m.at("groups").get<int64_t>();
      t.metrics.mse = JsonToDouble(m.at("mse"));
      t.metrics.max_abs_error = JsonToDouble(m.at("max_abs_error"));
      t.metrics.snr_db = JsonToDouble(m.at("snr_db"));
      t.metrics.clip_ratio = JsonToDouble(m.at("clip_ratio"));
      const Json& tm = j.at("timings");
      t.metrics.seconds = tm.at("quantize_seconds").get<double>();
      t.server_seconds = tm.at("server_seconds").get<double>();
      t.wall_seconds = tm.at("wall_seconds").get<double>();
      t.served_by = j.at("served_by").get<std::string>();
      t.attempts = j.at("attempts").get<int>();
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed tensor report: ", e.what()));
  }
  return t;
}

Json SummaryToJson(const RunSummary& s) {
  Json j;
  j["input"] = s.input;
  j["output"] = s.output;
  j["format"] = s.format;
  if (!s.gptq_format.empty()) j["checkpoint_format"] = s.gptq_format;
  j["backend"] = s.backend;
  j["quantized"] = s.quantized;
  j["skipped"] = s.skipped;
  j["copied"] = s.copied;
  if (s.consumed > 0) j["consumed"] = s.consumed;
  j["resumed"] = s.resumed;
  j["bytes_before"] = s.bytes_before;
  j["bytes_after"] = s.bytes_after;
  j["snr_mean_db"] = JsonNumber(s.snr_mean_db);
  Json worst = Json::array();
  for (const auto& [name, snr] : s.worst)
    worst.push_back({{"name", name}, {"snr_db", JsonNumber(snr)}});
  j["worst"] = std::move(worst);
  j["wall_seconds"] = s.wall_seconds;
  j["files"] = s.files;
  j["warnings"] = s.warnings;
  return j;
}

Json ReportToJson(const RunSummary& s, const std::vector<TensorReport>& tensors) {
  Json j;
  j["summary"] = SummaryToJson(s);
  Json ts = Json::array();
  for (const TensorReport& t : tensors) ts.push_back(TensorReportToJson(t));
  j["tensors"] = std::move(ts);
  return j;
}

std::string SummaryText(const RunSummary& s) {
  std::string out = absl::StrFormat("%-12s %s -> %s\n", "rtnq", s.input, s.output);
  auto row = [&](std::string_view k, const std::string& v) {
    absl::StrAppend(&out, absl::StrFormat("  %-12s %s\n", std::string(k), v));
  };
  row("format", s.gptq_format.empty()
                    ? s.format
                    : absl::StrCat(s.format, " (checkpoint_format ", s.gptq_format, ")"));
  row("backend", s.backend);
  row("tensors",
      absl::StrFormat("%d quantized, %d skipped, %d copied%s%s", s.quantized, s.skipped, s.copied,
                      s.consumed > 0 ? absl::StrCat(", ", s.consumed, " FP8 scales consumed") : "",
                      s.resumed > 0 ? absl::StrCat(" (", s.resumed, " resumed)") : ""));
  row("size", absl::StrFormat("%s -> %s (%.2fx smaller)", HumanBytes(s.bytes_before),
                              HumanBytes(s.bytes_after),
                              s.bytes_after == 0 ? 0.0 : double(s.bytes_before) / s.bytes_after));
  if (s.quantized > 0) {
    std::string worst;
    for (const auto& [name, snr] : s.worst) {
      absl::StrAppend(&worst, worst.empty() ? "" : ", ", name, absl::StrFormat(" %.2f dB", snr));
    }
    row("SNR", absl::StrFormat("mean %.2f dB; worst: %s", s.snr_mean_db, worst));
  }
  row("wall", absl::StrFormat("%.2f s", s.wall_seconds));
  return out;
}

}  // namespace rtnq::client
