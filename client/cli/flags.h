// The rtnq binary's flags (absl names; users type them hyphenated, see args.h) and the plain
// option structs they fill. Commands list the flags they accept with the groups below.
#pragma once

#include <set>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "client/cli/args.h"
#include "client/remote/client_options.h"
#include "client/session_config.h"
#include "core/engine.h"
#include "core/layout/gptq.h"

ABSL_DECLARE_FLAG(std::string, output);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(bool, quiet);
ABSL_DECLARE_FLAG(int32_t, threads);
ABSL_DECLARE_FLAG(std::string, kernels);
ABSL_DECLARE_FLAG(std::string, server);
ABSL_DECLARE_FLAG(std::string, config);

namespace rtnq::client::cli {

/// Local engine: --threads, --kernels.
inline const std::set<std::string> kEngineFlags = {"threads", "kernels"};
/// Reaching servers: --tls-ca, --tls-cert, --tls-key, --tls-server-name, --token-file,
/// --deadline, --max-attempts (plus --server itself).
inline const std::set<std::string> kRemoteFlags = {"server",   "tls_ca",          "tls_cert",
                                                   "tls_key",  "tls_server_name", "token_file",
                                                   "deadline", "max_attempts"};
/// Every spec parameter (ConfigFlags) and --config.
inline const std::set<std::string> kSpecFlags = {"preset",
                                                 "dtype",
                                                 "bits",
                                                 "group_size",
                                                 "scheme",
                                                 "quantile",
                                                 "full_range",
                                                 "mse_search",
                                                 "group_dim",
                                                 "double_quant_dtype",
                                                 "double_quant_bits",
                                                 "double_quant_scheme",
                                                 "double_quant_group_size",
                                                 "config"};

/// Union of flag groups.
std::set<std::string> FlagSet(std::initializer_list<std::set<std::string>> groups);

EngineOptions EngineOptionsFromFlags();
/// --server and the remote flags.
ClientOptions ClientOptionsFromFlags();
/// Local-mode flags (--threads, --kernels) with --server, or remote flags without it:
/// InvalidArgument naming the flag (a usage error).
absl::Status CheckModeFlags(const ParsedArgs& args);

/// --gptq-checkpoint-format: v1/v2 as users say it, or the config's own names; InvalidArgument
/// naming the flag otherwise.
absl::StatusOr<GptqFormat> ParseGptqFormatFlag(const std::string& s);

/// Only the spec flags that were given are set.
ConfigFlags ConfigFlagsFromArgs(const ParsedArgs& args);

}  // namespace rtnq::client::cli
