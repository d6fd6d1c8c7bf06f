// rtnq-local: the interim command-line tool that runs the core in-process on local files
// (synthesize a checkpoint, quantize it, verify the result) until the gRPC client exists.
// Flags live here only; they fill the plain option structs the commands take.
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/engine.h"
#include "core/synth_checkpoint.h"
#include "core/tools/quantize_command.h"
#include "core/tools/verify_command.h"

ABSL_FLAG(std::string, o, "", "output path (synth: directory; quantize: file or directory)");
ABSL_FLAG(std::string, output, "", "same as -o");
ABSL_FLAG(std::string, shape, "tiny", "synth: tiny, small or llama7b-layer");
ABSL_FLAG(int32_t, shards, 1, "synth: number of safetensors shards (>1 writes an index)");
ABSL_FLAG(uint64_t, seed, 0, "synth: random seed; the same seed gives the same bytes");
ABSL_FLAG(std::string, dtype, "bf16", "synth: bf16, f16 or f32");
ABSL_FLAG(std::string, config, "",
          "session config JSON: default keys plus optional \"weight_config\" (see README)");
ABSL_FLAG(std::string, preset, "",
          "preset applied to the default config (BNB_NF4, GGML_TYPE_Q4_K)");
ABSL_FLAG(std::string, format, "",
          "quantize: fake, inc or gptq (default fake); verify: checked against the record");
ABSL_FLAG(std::string, gptq_checkpoint_format, "",
          "gptq or gptq_v2; default gptq when every layer is sym, gptq_v2 otherwise");
ABSL_FLAG(int32_t, threads, 0, "worker threads (0 = all cores)");
ABSL_FLAG(std::string, kernels, "", "reference, avx2 or avx512 (default: best for this CPU)");
ABSL_FLAG(double, min_snr_db, 10.0, "verify: fail any quantized tensor below this SNR");
ABSL_FLAG(bool, exact, true,
          "verify: also require the stored tensors to equal a fresh quantization bit for bit");

namespace {

constexpr char kUsage[] =
    R"(quantize local checkpoints in-process (interim tool until the gRPC client exists)

usage:
  rtnq-local synth -o DIR [--shape tiny|small|llama7b-layer] [--shards N] [--seed S]
                   [--dtype bf16|f16|f32]
      Writes a synthetic Llama-shaped checkpoint (heavy-tailed weights, outlier channels) and its
      config.json into a new or empty DIR.

  rtnq-local quantize INPUT -o OUTPUT [--config FILE.json] [--preset NAME]
                   [--format fake|inc|gptq] [--gptq_checkpoint_format gptq|gptq_v2]
                   [--threads N] [--kernels reference|avx2|avx512]
      INPUT is a .safetensors file (OUTPUT is then a file) or a checkpoint directory (OUTPUT is a
      new or empty directory that receives model.safetensors, config.json with the quantization
      recorded, quantize_config.json for gptq, and the other small files). 2-D float "*.weight"
      tensors are quantized except embeddings, lm_head and norms (name one exactly in
      weight_config to include it) and those whose config has dtype fp32; the rest is copied.
      Formats: fake = dequantized values in the original dtype; inc = INC's packed qweight/scales/
      qzeros; gptq = the GPTQ layout HF/vLLM load. This interim tool holds every result in memory
      until all tensors are done, then writes; a failed run leaves no output.

  rtnq-local verify ORIGINAL QUANTIZED [--format fake|inc|gptq] [--min_snr_db DB] [--noexact]
      Unpacks and dequantizes every quantized tensor and compares it with the original (SNR, shapes),
      checks the stored bytes equal a fresh quantization (--noexact skips this) and that every other
      tensor is unchanged. Configs come from the "rtnq.quantization" metadata quantize wrote; for
      checkpoints without it pass --format and the --config/--preset/--gptq_checkpoint_format used.

exit status: 0 success, 1 error or failed verification, 2 bad usage)";

int Usage(const std::string& error) {
  std::cerr << "rtnq-local: " << error << "\n\nrtnq-local: " << kUsage << "\n";
  return 2;
}

int Fail(const std::string& command, const absl::Status& status) {
  std::cerr << "rtnq-local " << command << ": " << status.ToString() << "\n";
  return 1;
}

std::string OutputFlag() {
  const std::string o = absl::GetFlag(FLAGS_o);
  return o.empty() ? absl::GetFlag(FLAGS_output) : o;
}

rtnq::EngineOptions EngineFlags() {
  return rtnq::EngineOptions{.threads = absl::GetFlag(FLAGS_threads),
                             .kernels = absl::GetFlag(FLAGS_kernels)};
}

absl::StatusOr<rtnq::ElemType> ParseSynthDtype(const std::string& s) {
  if (s == "bf16" || s == "BF16") return rtnq::ElemType::kBF16;
  if (s == "f16" || s == "fp16" || s == "F16") return rtnq::ElemType::kF16;
  if (s == "f32" || s == "fp32" || s == "F32") return rtnq::ElemType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype must be bf16, f16 or f32, got \"", s, "\""));
}

int RunSynth(const std::vector<std::string>& args) {
  if (!args.empty()) return Usage("synth takes no positional arguments");
  rtnq::SynthOptions options;
  options.output_dir = OutputFlag();
  if (options.output_dir.empty()) return Usage("synth needs -o DIR");
  absl::StatusOr<rtnq::SynthShape> shape = rtnq::SynthShapeByName(absl::GetFlag(FLAGS_shape));
  if (!shape.ok()) return Fail("synth", shape.status());
  options.shape = *shape;
  absl::StatusOr<rtnq::ElemType> dtype = ParseSynthDtype(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return Fail("synth", dtype.status());
  options.dtype = *dtype;
  options.shards = absl::GetFlag(FLAGS_shards);
  options.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<std::unique_ptr<rtnq::Engine>> engine = rtnq::Engine::Create(EngineFlags());
  if (!engine.ok()) return Fail("synth", engine.status());
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = rtnq::WriteSynthCheckpoint(options, **engine); !s.ok()) {
    return Fail("synth", s);
  }
  uint64_t bytes = 0;
  const auto specs = rtnq::SynthTensorSpecs(options.shape, options.dtype);
  for (const rtnq::TensorSpec& t : specs) {
    uint64_t n = rtnq::ElemSize(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    bytes += n;
  }
  std::cout << absl::StrFormat(
      "synth: wrote %s (hidden %d, intermediate %d, %d layers, %d/%d heads, vocab %d): %d tensors, "
      "%.2f MiB %s, %d shard(s), seed %d, to %s in %.2f s\n",
      options.shape.name, options.shape.hidden, options.shape.intermediate, options.shape.layers,
      options.shape.heads, options.shape.kv_heads, options.shape.vocab, specs.size(),
      bytes / 1048576.0, rtnq::ElemTypeName(options.dtype), options.shards, options.seed,
      options.output_dir,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

// Parses --gptq_checkpoint_format when set.
absl::StatusOr<std::optional<rtnq::GptqFormat>> GptqFormatFlag() {
  const std::string s = absl::GetFlag(FLAGS_gptq_checkpoint_format);
  if (s.empty()) return std::nullopt;
  absl::StatusOr<rtnq::GptqFormat> f = rtnq::ParseGptqFormat(s);
  if (!f.ok()) return f.status();
  return std::optional<rtnq::GptqFormat>(*f);
}

int RunQuantizeCommand(const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("quantize takes exactly one INPUT");
  rtnq::local::QuantizeCommandOptions options;
  options.input = args[0];
  options.output = OutputFlag();
  if (options.output.empty()) return Usage("quantize needs -o OUTPUT");
  options.config_path = absl::GetFlag(FLAGS_config);
  options.preset = absl::GetFlag(FLAGS_preset);
  const std::string format = absl::GetFlag(FLAGS_format);
  if (!format.empty()) {
    absl::StatusOr<rtnq::local::OutputFormat> f = rtnq::local::ParseOutputFormat(format);
    if (!f.ok()) return Fail("quantize", f.status());
    options.format = *f;
  }
  absl::StatusOr<std::optional<rtnq::GptqFormat>> gf = GptqFormatFlag();
  if (!gf.ok()) return Fail("quantize", gf.status());
  options.gptq_format = *gf;
  options.engine = EngineFlags();
  if (absl::Status s = rtnq::local::RunQuantize(options, std::cout); !s.ok()) {
    std::cout.flush();
    return Fail("quantize", s);
  }
  return 0;
}

int RunVerifyCommand(const std::vector<std::string>& args) {
  if (args.size() != 2) return Usage("verify takes ORIGINAL and QUANTIZED");
  rtnq::local::VerifyCommandOptions options;
  options.original = args[0];
  options.quantized = args[1];
  const std::string format = absl::GetFlag(FLAGS_format);
  if (!format.empty()) {
    absl::StatusOr<rtnq::local::OutputFormat> f = rtnq::local::ParseOutputFormat(format);
    if (!f.ok()) return Fail("verify", f.status());
    options.format = *f;
  }
  options.config_path = absl::GetFlag(FLAGS_config);
  options.preset = absl::GetFlag(FLAGS_preset);
  absl::StatusOr<std::optional<rtnq::GptqFormat>> gf = GptqFormatFlag();
  if (!gf.ok()) return Fail("verify", gf.status());
  options.gptq_format = *gf;
  options.min_snr_db = absl::GetFlag(FLAGS_min_snr_db);
  options.exact = absl::GetFlag(FLAGS_exact);
  options.engine = EngineFlags();
  if (absl::Status s = rtnq::local::RunVerify(options, std::cout); !s.ok()) {
    std::cout.flush();
    return Fail("verify", s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "rtnq_local.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() < 2) return Usage("missing command (synth, quantize or verify)");
  const std::string command = positional[1];
  const std::vector<std::string> args(positional.begin() + 2, positional.end());
  if (command == "help") {
    std::cout << "rtnq-local: " << kUsage << "\n";
    return 0;
  }
  if (command == "synth") return RunSynth(args);
  if (command == "quantize") return RunQuantizeCommand(args);
  if (command == "verify") return RunVerifyCommand(args);
  return Usage(absl::StrCat("unknown command \"", command, "\""));
}
