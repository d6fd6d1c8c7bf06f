// The flags themselves. Names use '_' because absl requires it; users type '-' (args.h).
#include "client/cli/flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

// Shared.
ABSL_FLAG(std::string, output, "", "output path (-o): a file or a directory");
ABSL_FLAG(bool, json, false, "machine-readable JSON on stdout instead of text");
ABSL_FLAG(bool, quiet, false, "no progress output");
ABSL_FLAG(int32_t, threads, 0, "local worker threads (0 = all cores)");
ABSL_FLAG(std::string, kernels, "", "reference, avx2 or avx512 (default: best for this CPU)");

// Remote.
ABSL_FLAG(std::string, server, "",
          "rtnq servers: host:port, a comma list (round_robin) or dns:///name:port");
ABSL_FLAG(std::string, tls_ca, "", "PEM roots to verify the server (turns TLS on)");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mutual TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM client key (mutual TLS)");
ABSL_FLAG(std::string, tls_server_name, "", "name expected in the server certificate");
ABSL_FLAG(std::string, token_file, "", "file holding a bearer token sent with every call");
ABSL_FLAG(double, deadline, 0, "seconds per tensor attempt (0 = none)");
ABSL_FLAG(int32_t, max_attempts, 4, "attempts per tensor, the first included");

// Spec parameters (INC key names); set only when given.
ABSL_FLAG(std::string, preset, "", "BNB_NF4 or GGML_TYPE_Q4_K");
ABSL_FLAG(std::string, dtype, "", "quantization dtype: int, int4, nf4, fp4, fp4_e2m1, fp32...");
ABSL_FLAG(int64_t, bits, 4, "bits per weight");
ABSL_FLAG(int64_t, group_size, 32, "elements per group (-1: a whole row)");
ABSL_FLAG(std::string, scheme, "", "sym or asym");
ABSL_FLAG(double, quantile, 1.0, "clip quantile");
ABSL_FLAG(bool, full_range, false, "use the full signed range (sym)");
ABSL_FLAG(bool, mse_search, false, "search the clip ratio minimizing MSE");
ABSL_FLAG(int64_t, group_dim, 1, "1: groups along rows (input channels); 0: along columns");
ABSL_FLAG(std::string, double_quant_dtype, "", "dtype of the quantized scales");
ABSL_FLAG(int64_t, double_quant_bits, 8, "bits of the quantized scales");
ABSL_FLAG(std::string, double_quant_scheme, "", "sym or asym for the scales");
ABSL_FLAG(int64_t, double_quant_group_size, 256, "scales per double-quant group");
ABSL_FLAG(std::string, config, "",
          "session config JSON: spec keys plus optional \"weight_config\"; flags override it");

namespace rtnq::client::cli {

std::set<std::string> FlagSet(std::initializer_list<std::set<std::string>> groups) {
  std::set<std::string> all;
  for (const auto& g : groups) all.insert(g.begin(), g.end());
  return all;
}

EngineOptions EngineOptionsFromFlags() {
  return EngineOptions{.threads = absl::GetFlag(FLAGS_threads),
                       .kernels = absl::GetFlag(FLAGS_kernels)};
}

ClientOptions ClientOptionsFromFlags() {
  ClientOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  o.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  o.token_file = absl::GetFlag(FLAGS_token_file);
  o.deadline_seconds = absl::GetFlag(FLAGS_deadline);
  o.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  return o;
}

absl::Status CheckModeFlags(const ParsedArgs& args) {
  const bool remote = args.Has("server");
  for (const std::string& f : remote ? kEngineFlags : kRemoteFlags) {
    if (args.Has(f)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", UserFlagName(f), remote ? " applies to local mode only" : " needs --server"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GptqFormat> ParseGptqFormatFlag(const std::string& s) {
  if (s == "v1") return GptqFormat::kV1;
  if (s == "v2") return GptqFormat::kV2;
  absl::StatusOr<GptqFormat> f = ParseGptqFormat(s);
  if (!f.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gptq-checkpoint-format must be v1 or v2, got \"", s, "\""));
  }
  return f;
}

ConfigFlags ConfigFlagsFromArgs(const ParsedArgs& args) {
  ConfigFlags c;
  // Copies a flag into its optional only when the user gave it.
  auto take = [&](const char* name, auto& field, const auto& flag) {
    if (args.Has(name)) field = absl::GetFlag(flag);
  };
  take("preset", c.preset, FLAGS_preset);
  take("dtype", c.dtype, FLAGS_dtype);
  take("bits", c.bits, FLAGS_bits);
  take("group_size", c.group_size, FLAGS_group_size);
  take("scheme", c.scheme, FLAGS_scheme);
  take("quantile", c.quantile, FLAGS_quantile);
  take("full_range", c.full_range, FLAGS_full_range);
  take("mse_search", c.mse_search, FLAGS_mse_search);
  take("group_dim", c.group_dim, FLAGS_group_dim);
  take("double_quant_dtype", c.double_quant_dtype, FLAGS_double_quant_dtype);
  take("double_quant_bits", c.double_quant_bits, FLAGS_double_quant_bits);
  take("double_quant_scheme", c.double_quant_scheme, FLAGS_double_quant_scheme);
  take("double_quant_group_size", c.double_quant_group_size, FLAGS_double_quant_group_size);
  return c;
}

}  // namespace rtnq::client::cli
