// What `rtnq plan` prints and writes: a table of every selected tensor's choice (stdout and
// --report) and the summary (bits per weight, predicted file size, quality against each uniform
// candidate, timings).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "client/plan/planner.h"

namespace rtnq::client {

/// The per-tensor table and the summary, for a terminal.
std::string PlanText(const PlanRequest& request, const PlanOutcome& plan);

/// {"summary": {...}, "tensors": [...], "uniform": [...]}; +inf SNRs are the string "inf".
nlohmann::ordered_json PlanReportJson(const PlanRequest& request, const PlanOutcome& plan);

}  // namespace rtnq::client
