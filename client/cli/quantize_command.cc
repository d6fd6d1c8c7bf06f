// `rtnq quantize INPUT -o OUTPUT`: the flags become QuantizeRunOptions and a backend (local without
// --server, remote with it); RunQuantize does the work.
#include <unistd.h>

#include <iostream>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/checkpoint_util.h"
#include "client/cli/command.h"
#include "client/cli/flags.h"
#include "client/cli/plan_cli.h"
#include "client/local_backend.h"
#include "client/quantize_run.h"
#include "client/remote/remote_backend.h"
#include "client/session_config.h"
#include "client/tensor_selection.h"
#include "core/status_macros.h"

ABSL_FLAG(std::string, format, "fake", "fake, inc, gptq, compressed-tensors or awq");
ABSL_FLAG(std::string, gptq_checkpoint_format, "",
          "v1 (gptq) or v2 (gptq_v2); default v1 when every layer is sym");
ABSL_FLAG(int32_t, compression_dim, 1, "inc: 1 packs along rows, 0 along columns");
ABSL_FLAG(std::string, target, "any",
          "any (warn about loaders that would not load the output), vllm or transformers "
          "(refuse to write what that engine would not load as intended)");
ABSL_FLAG(std::string, include, "", "tensors to quantize (repeatable, comma lists)");
ABSL_FLAG(std::string, exclude, "", "tensors to leave unquantized (repeatable, comma lists)");
ABSL_FLAG(std::string, report, "", "write a per-tensor JSON report to this file");
ABSL_FLAG(int32_t, streams, 1, "tensors in flight (parallel sessions)");
ABSL_FLAG(bool, resume, false, "reuse the tensors an interrupted run completed");
ABSL_FLAG(std::string, expert_layout, "",
          "stacked MoE experts: out-in, in-out, out-in-interleaved or in-out-interleaved "
          "(default: from config.json model_type)");

namespace rtnq::client::cli {
namespace {

constexpr char kUsage[] = R"(rtnq quantize INPUT -o OUTPUT [options]
  INPUT: a .safetensors file (OUTPUT is a file), a sharded checkpoint directory or a Hugging Face
  model directory (OUTPUT is a new directory: same shards, other files copied, the quantization
  config added). By default 2-D float "*.weight" tensors are quantized except embeddings, lm_head
  and norms; the rest is copied.
  spec:    --bits N --group-size N --scheme sym|asym --quantile Q --dtype int|nf4|fp4|...
           --full-range --mse-search --group-dim 0|1 --double-quant-dtype D
           --double-quant-bits N --double-quant-scheme S --double-quant-group-size N
           --preset BNB_NF4|GGML_TYPE_Q4_K --config FILE.json (spec keys + "weight_config";
           flags override the file's top-level keys). --dtype is the quantization dtype.
  output:  --format fake|inc|gptq|compressed-tensors|awq (default fake; gptq without --scheme:
           sym; awq: 4-bit asym only)
           --gptq-checkpoint-format v1|v2 --compression-dim 0|1 (inc)
           --target any|vllm|transformers (default any: warn about loader rules; otherwise the
           engine's rules are errors, checked before anything is written)
           --include PATTERNS --exclude PATTERNS (repeatable, comma lists; names, globs,
           re:REGEX) --report FILE.json
  MoE:     --expert-layout out-in|in-out|out-in-interleaved|in-out-interleaved: how stacked
           expert tensors [E, a, b] lie (default: from config.json model_type; required for
           other stacked checkpoints). Each expert is quantized as its own [out, in] weight.
  run:     --streams N --resume --quiet --json (summary JSON on stdout)
           --dry-run (print the whole plan from the headers, read no tensor data; -o optional)
  plan:    --target-bpw B | --target-size S | --min-snr DB with --candidates LIST (and
           --imatrix F, --objective): run `rtnq plan` first, then quantize with its choice
  local:   --threads N --kernels reference|avx2|avx512
  remote:  --server ADDR (host:port, h1:p1,h2:p2 or dns:///name:port) --tls-ca F --tls-cert F
           --tls-key F --tls-server-name NAME --token-file F --deadline SECONDS
           --max-attempts N)";

}  // namespace

absl::Status OutputFlagsToOptions(const ParsedArgs& args, QuantizeRunOptions& options) {
  RTNQ_ASSIGN_OR_RETURN(options.format, ParseOutputLayout(absl::GetFlag(FLAGS_format)));
  if (args.Has("gptq_checkpoint_format")) {
    if (options.format != OutputLayout::kGptq) {
      return absl::InvalidArgumentError("--gptq-checkpoint-format needs --format gptq");
    }
    RTNQ_ASSIGN_OR_RETURN(options.gptq_format,
                          ParseGptqFormatFlag(absl::GetFlag(FLAGS_gptq_checkpoint_format)));
  }
  options.compression_dim = absl::GetFlag(FLAGS_compression_dim);
  RTNQ_ASSIGN_OR_RETURN(options.target, ParseLoaderTarget(absl::GetFlag(FLAGS_target)));
  if (args.Has("include")) options.include = SplitPatternList(args.values.at("include"));
  if (args.Has("exclude")) options.exclude = SplitPatternList(args.values.at("exclude"));
  if (args.Has("expert_layout")) {
    RTNQ_ASSIGN_OR_RETURN(options.expert_layout,
                          ParseExpertLayout(absl::GetFlag(FLAGS_expert_layout)));
  }
  return absl::OkStatus();
}

namespace {

int Run(const Command& self, const ParsedArgs& args) {
  if (args.positional.size() != 1) return UsageError(self, "quantize takes exactly one INPUT");
  QuantizeRunOptions options;
  options.input = args.positional[0];
  options.output = absl::GetFlag(FLAGS_output);
  if (options.output.empty() && !args.Has("dry_run")) {
    return UsageError(self, "quantize needs -o OUTPUT");
  }

  if (absl::Status s = CheckModeFlags(args); !s.ok()) {
    return UsageError(self, std::string(s.message()));
  }
  const bool remote = args.Has("server");
  if (absl::Status s = OutputFlagsToOptions(args, options); !s.ok()) {
    return UsageError(self, std::string(s.message()));
  }
  options.streams = absl::GetFlag(FLAGS_streams);
  if (options.streams < 1) return UsageError(self, "--streams must be at least 1");
  options.resume = absl::GetFlag(FLAGS_resume);
  options.report_path = absl::GetFlag(FLAGS_report);

  absl::StatusOr<std::string> config =
      MergeSessionConfig(absl::GetFlag(FLAGS_config), ConfigFlagsFromArgs(args));
  if (!config.ok()) return Fail(config.status());
  options.config_json = *config;
  if (options.format == OutputLayout::kGptq) {
    absl::StatusOr<GptqSchemeDefault> d = ApplyGptqSchemeDefault(options.config_json);
    if (!d.ok()) return Fail(d.status());
    options.config_json = d->config_json;
    if (!d->notice.empty() && !absl::GetFlag(FLAGS_quiet)) {
      std::cerr << "note: " << d->notice << "\n";
    }
  }
  if (std::optional<int> exit = PlanBeforeQuantize(self, args, options)) return *exit;

  std::unique_ptr<Backend> backend;
  if (remote) {
    absl::StatusOr<std::unique_ptr<RemoteBackend>> b =
        RemoteBackend::Create(ClientOptionsFromFlags());
    if (!b.ok()) return Fail(b.status());
    backend = std::move(*b);
  } else {
    absl::StatusOr<std::unique_ptr<LocalBackend>> b =
        LocalBackend::Create(EngineOptionsFromFlags());
    if (!b.ok()) return Fail(b.status());
    backend = std::move(*b);
  }

  // Progress goes to stderr so that --json leaves stdout to the summary.
  const ProgressMode mode = absl::GetFlag(FLAGS_quiet) ? ProgressMode::kQuiet
                            : isatty(STDERR_FILENO)    ? ProgressMode::kBar
                                                       : ProgressMode::kLines;
  Progress progress(mode, std::cerr);
  absl::StatusOr<QuantizeOutcome> outcome = RunQuantize(options, *backend, progress);
  progress.Finish();
  if (!outcome.ok()) return Fail(outcome.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << SummaryToJson(outcome->summary).dump(2) << "\n";
  } else if (!absl::GetFlag(FLAGS_quiet)) {
    std::cout << SummaryText(outcome->summary);
  }
  return kExitOk;
}

}  // namespace

const Command& QuantizeCommand() {
  static const Command* command = new Command{
      .name = "quantize",
      .summary = "quantize a checkpoint locally or on rtnq servers",
      .usage = kUsage,
      .flags = FlagSet({kSpecFlags,
                        kEngineFlags,
                        kRemoteFlags,
                        kPlanFlags,
                        kOutputFlags,
                        {"output", "report", "streams", "resume", "quiet", "json", "dry_run"}}),
      .run = Run};
  return *command;
}

}  // namespace rtnq::client::cli
