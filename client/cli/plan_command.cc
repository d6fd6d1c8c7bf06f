// `rtnq plan INPUT --candidates LIST (--target-bpw B | --target-size S | --min-snr DB) -o PLAN`:
// measures every selected tensor under every candidate and writes the exact best choice as a
// config for `rtnq quantize --config`.
#include <iostream>
#include <memory>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/checkpoint_util.h"
#include "client/cli/command.h"
#include "client/cli/flags.h"
#include "client/cli/plan_cli.h"
#include "client/local_backend.h"
#include "client/plan/dry_run.h"
#include "client/plan/plan_report.h"
#include "client/plan/remote_measure.h"
#include "client/remote/remote_backend.h"
#include "client/tensor_selection.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"

ABSL_FLAG(std::string, candidates, "",
          "plan: configs to choose from, e.g. int4:g128:sym,int8:g128:sym,keep");
ABSL_FLAG(double, target_bpw, 0, "plan: bits per weight of the selected tensors at most");
ABSL_FLAG(std::string, target_size, "", "plan: output files at most this size (bytes, k/m/g/t)");
ABSL_FLAG(double, min_snr, 0, "plan: every tensor at least this SNR in dB");
ABSL_FLAG(std::string, imatrix, "", "plan: llama.cpp importance matrix (.dat or .gguf)");
ABSL_FLAG(std::string, sensitivity, "",
          "plan: safetensors with a same-shape importance tensor per weight");
ABSL_FLAG(std::string, objective, "error", "plan: minimise total error, or maximise mean snr");
ABSL_FLAG(bool, dry_run, false, "quantize: print the whole plan without reading tensor data");

ABSL_DECLARE_FLAG(std::string, report);
ABSL_DECLARE_FLAG(int32_t, streams);

namespace rtnq::client::cli {
namespace {

constexpr char kUsage[] =
    R"(rtnq plan INPUT --candidates LIST (--target-bpw B | --target-size S | --min-snr DB) -o PLAN.json
  Measures every selected tensor of INPUT under every candidate config and chooses one candidate
  per tensor (one per fused q/k/v, gate/up or MoE-experts group), exactly: the least total error
  within the budget. PLAN.json is a config for `rtnq quantize INPUT --config PLAN.json --format F`.
  candidates: comma list of int2..int8|nf4|fp4|fp4_e2m1 with :gN :g-1 :row :sym :asym :mse
           :fullrange :qF options (e.g. int4:g128:sym,int8:g128:sym,nf4:g64), keep (or fp16,
           bf16: left as stored), {JSON config} or @FILE.json (an object or an array)
  budget:  --target-bpw B (output bits per weight of the selected tensors)
           --target-size S (bytes of the output safetensors files, headers included; k/m/g/t)
           --min-snr DB (every tensor at least DB; alone: the smallest such plan)
  error:   --objective error|snr (total squared error, or size-weighted mean SNR)
           --imatrix FILE (llama.cpp .dat or .gguf) | --sensitivity FILE.safetensors
  output:  --format fake|inc|gptq (costs are this format's bytes) --gptq-checkpoint-format v1|v2
           --compression-dim 0|1 --include/--exclude PATTERNS (as quantize) --config FILE.json
           and spec flags (carried into PLAN.json) --report FILE.json --json --quiet
  local:   --threads N --kernels reference|avx2|avx512
  remote:  --server ADDR --streams N and quantize's remote flags (measured on rtnq servers))";

// What a quantize run would select and write, as a plan request.
PlanRequest RequestFor(const QuantizeRunOptions& o) {
  PlanRequest r;
  r.input = o.input;
  r.config_json = o.config_json;
  r.include = o.include;
  r.exclude = o.exclude;
  r.format = o.format;
  r.gptq_format = o.gptq_format;
  r.compression_dim = o.compression_dim;
  return r;
}

int Run(const Command& self, const ParsedArgs& args) {
  if (args.positional.size() != 1) return UsageError(self, "plan takes exactly one INPUT");
  const std::string output = absl::GetFlag(FLAGS_output);
  if (output.empty()) return UsageError(self, "plan needs -o PLAN.json");
  if (absl::Status s = CheckModeFlags(args); !s.ok()) {
    return UsageError(self, std::string(s.message()));
  }
  if (args.Has("streams") && !args.Has("server")) {
    return UsageError(self, "--streams needs --server (local measurement uses --threads)");
  }
  QuantizeRunOptions quantize;
  quantize.input = args.positional[0];
  if (absl::Status s = OutputFlagsToOptions(args, quantize); !s.ok()) {
    return UsageError(self, std::string(s.message()));
  }
  PlanRequest request = RequestFor(quantize);
  if (absl::Status s = PlanRequestFromFlags(args, request); !s.ok()) {
    return UsageError(self, std::string(s.message()));
  }
  absl::StatusOr<std::string> config =
      MergeSessionConfig(absl::GetFlag(FLAGS_config), ConfigFlagsFromArgs(args));
  if (!config.ok()) return Fail(config.status());
  request.config_json = *config;

  const bool quiet = absl::GetFlag(FLAGS_quiet);
  absl::StatusOr<PlanOutcome> plan = RunPlanFromFlags(args, request, quiet);
  if (!plan.ok()) return Fail(plan.status());
  if (absl::Status s = WriteFileAtomically(output, plan->config.dump(2) + "\n"); !s.ok()) {
    return Fail(s);
  }
  const nlohmann::ordered_json report = PlanReportJson(request, *plan);
  if (const std::string path = absl::GetFlag(FLAGS_report); !path.empty()) {
    if (absl::Status s = WriteFileAtomically(path, report.dump(2) + "\n"); !s.ok()) return Fail(s);
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << report.dump(2) << "\n";
  } else if (!quiet) {
    std::cout << PlanText(request, *plan) << "plan written to " << output << "\n";
  }
  return kExitOk;
}

}  // namespace

bool WantsPlan(const ParsedArgs& args) {
  return args.Has("target_bpw") || args.Has("target_size") || args.Has("min_snr");
}

absl::Status PlanRequestFromFlags(const ParsedArgs& args, PlanRequest& request) {
  if (!args.Has("candidates")) {
    return absl::InvalidArgumentError(
        "a plan needs --candidates (e.g. int4:g128:sym,int8:g128:sym)");
  }
  if (!WantsPlan(args)) {
    return absl::InvalidArgumentError(
        "a plan needs a budget: --target-bpw, --target-size or "
        "--min-snr");
  }
  absl::StatusOr<std::vector<Candidate>> candidates =
      ParseCandidates(absl::GetFlag(FLAGS_candidates));
  if (!candidates.ok()) return candidates.status();
  request.candidates = *std::move(candidates);
  if (args.Has("target_bpw")) request.target_bpw = absl::GetFlag(FLAGS_target_bpw);
  if (args.Has("target_size")) {
    absl::StatusOr<uint64_t> size = ParseSize(absl::GetFlag(FLAGS_target_size));
    if (!size.ok())
      return absl::InvalidArgumentError(absl::StrCat("--target-size: ", size.status().message()));
    request.target_size = *size;
  }
  if (args.Has("min_snr")) request.min_snr_db = absl::GetFlag(FLAGS_min_snr);
  if (request.target_bpw && !(*request.target_bpw > 0 && *request.target_bpw <= 64)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target-bpw must be in (0, 64], got ", *request.target_bpw));
  }
  const std::string objective = absl::GetFlag(FLAGS_objective);
  if (objective != "error" && objective != "snr") {
    return absl::InvalidArgumentError(
        absl::StrCat("--objective must be error or snr, got \"", objective, "\""));
  }
  request.objective = objective == "snr" ? PlanObjective::kSnr : PlanObjective::kError;
  if (args.Has("imatrix") && args.Has("sensitivity")) {
    return absl::InvalidArgumentError("--imatrix and --sensitivity are alternatives; give one");
  }
  return absl::OkStatus();
}

absl::StatusOr<PlanOutcome> RunPlanFromFlags(const ParsedArgs& args, const PlanRequest& request,
                                             bool quiet) {
  Importance importance;
  if (args.Has("imatrix")) {
    RTNQ_ASSIGN_OR_RETURN(importance, Importance::FromImatrix(absl::GetFlag(FLAGS_imatrix)));
  } else if (args.Has("sensitivity")) {
    RTNQ_ASSIGN_OR_RETURN(importance,
                          Importance::FromSensitivity(absl::GetFlag(FLAGS_sensitivity)));
  }
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Measurer> measurer;
  if (args.Has("server")) {
    RTNQ_ASSIGN_OR_RETURN(
        measurer, RemoteMeasurer::Create(ClientOptionsFromFlags(), absl::GetFlag(FLAGS_streams)));
  } else {
    RTNQ_ASSIGN_OR_RETURN(engine, Engine::Create(EngineOptionsFromFlags()));
    measurer = std::make_unique<LocalMeasurer>(*engine);
  }
  PlanProgress progress;
  if (!quiet) {
    progress = [](size_t done, size_t total, const std::string& name) {
      std::cerr << absl::StrFormat("measured [%d/%d] %s\n", done, total, name);
    };
  }
  return MakePlan(request, *measurer, importance, progress);
}

std::optional<int> PlanBeforeQuantize(const Command& self, const ParsedArgs& args,
                                      QuantizeRunOptions& options) {
  const bool quiet = absl::GetFlag(FLAGS_quiet);
  if (WantsPlan(args) || args.Has("candidates")) {
    PlanRequest request = RequestFor(options);
    if (absl::Status s = PlanRequestFromFlags(args, request); !s.ok()) {
      return UsageError(self, std::string(s.message()));
    }
    absl::StatusOr<PlanOutcome> plan = RunPlanFromFlags(args, request, quiet);
    if (!plan.ok()) return Fail(plan.status());
    // The plan's config carries the selection: exact entries for every tensor it decided.
    options.config_json = plan->config.dump();
    options.include.clear();
    options.exclude.clear();
    if (!quiet) {
      std::cerr << absl::StrFormat("plan: %.4f bits per weight, predicted %d bytes\n",
                                   plan->bits_per_weight, plan->predicted_bytes);
    }
  }
  if (!absl::GetFlag(FLAGS_dry_run)) return std::nullopt;
  absl::StatusOr<DryRun> run = DryRunQuantize(options);
  if (!run.ok()) return Fail(run.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << DryRunJson(options, *run).dump(2) << "\n";
  } else {
    std::cout << DryRunText(options, *run);
  }
  return kExitOk;
}

const Command& PlanCommand() {
  static const Command* command =
      new Command{.name = "plan",
                  .summary = "choose a config per tensor for a size or quality budget",
                  .usage = kUsage,
                  .flags = FlagSet({kSpecFlags,
                                    kEngineFlags,
                                    kRemoteFlags,
                                    kPlanFlags,
                                    kOutputFlags,
                                    {"output", "report", "streams", "quiet", "json"}}),
                  .run = Run};
  return *command;
}

}  // namespace rtnq::client::cli
