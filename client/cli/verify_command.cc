// `rtnq verify ORIGINAL QUANTIZED`: VerifyCheckpoint's report as a table, and its verdict as the
// exit code.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "client/cli/command.h"
#include "client/cli/flags.h"
#include "client/verify.h"
#include "core/config/quant_config.h"

ABSL_FLAG(double, min_snr_db, 10.0, "verify: fail any quantized tensor below this SNR (dB)");
ABSL_FLAG(bool, exact, true,
          "verify: also require the stored tensors to equal a fresh quantization bit for bit");

namespace rtnq::client::cli {
namespace {

constexpr char kUsage[] = R"(rtnq verify ORIGINAL QUANTIZED [--min-snr-db DB] [--no-exact]
             [--threads N] [--kernels K]
  Unpacks and dequantizes every quantized tensor of a fake/inc/gptq checkpoint (using the
  manifest quantize recorded) and compares it with the original (SNR, MSE), checks the stored
  bytes equal a fresh quantization (--no-exact skips this) and that every other tensor is
  unchanged. Exit 1 on any mismatch or unreadable file.)";

int Run(const Command& self, const ParsedArgs& args) {
  if (args.positional.size() != 2) return UsageError(self, "verify takes ORIGINAL and QUANTIZED");
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(EngineOptionsFromFlags());
  if (!engine.ok()) return Fail(engine.status());
  const VerifyOptions options{.min_snr_db = absl::GetFlag(FLAGS_min_snr_db),
                              .exact = absl::GetFlag(FLAGS_exact)};
  absl::StatusOr<VerifyReport> report =
      VerifyCheckpoint(args.positional[0], args.positional[1], options, **engine);
  if (!report.ok()) return Fail(report.status());

  size_t width = 0;
  for (const TensorCheck& t : report->quantized) width = std::max(width, t.name.size());
  for (const TensorCheck& t : report->quantized) {
    std::cout << absl::StrFormat("  %-*s  %-18s  SNR %6.2f dB  MSE %.3e  %-16s %s\n", width, t.name,
                                 ConfigSummary(t.config), t.snr_db, t.mse, t.exact,
                                 t.problems.empty() ? "ok" : "FAIL");
  }
  for (const std::string& p : report->problems) std::cout << "  problem: " << p << "\n";
  if (!report->quantized.empty()) {
    std::cout << absl::StrFormat("SNR mean %.2f dB, worst %.2f dB (%s)\n", report->snr_mean_db,
                                 report->worst_snr_db, report->worst);
  }
  std::cout << absl::StrFormat("%d quantized tensors checked, %d copied tensors identical\n",
                               report->quantized.size(), report->copied_identical);
  if (!report->ok()) {
    std::cout << "verify FAILED: " << report->problems.size() << " problem(s)\n";
    std::cerr << "rtnq: error: verification failed: " << report->problems.front() << "\n";
    return kExitFailed;
  }
  std::cout << "verify OK\n";
  return kExitOk;
}

}  // namespace

const Command& VerifyCommand() {
  static const Command* command =
      new Command{.name = "verify",
                  .summary = "check a quantized checkpoint against its original",
                  .usage = kUsage,
                  .flags = FlagSet({kEngineFlags, {"min_snr_db", "exact"}}),
                  .run = Run};
  return *command;
}

}  // namespace rtnq::client::cli
