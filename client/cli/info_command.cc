// `rtnq info [--server ADDR]`: what this binary (local mode) or a server can do.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_join.h"
#include "client/checkpoint_util.h"
#include "client/cli/command.h"
#include "client/cli/flags.h"
#include "client/cli/version.h"
#include "client/remote/server_calls.h"
#include "core/capabilities.h"
#include "core/config/quant_config.h"
#include "core/kernels/kernels.h"
#include "nlohmann/json.hpp"

namespace rtnq::client::cli {
namespace {

constexpr char kUsage[] = R"(rtnq info [--server ADDR] [--json]
  Without --server: this binary's local capabilities (version, kernels, threads, dtypes, output
  layouts, presets). With --server (TLS and token flags apply): the server's ServerInfo.)";

// Local mode's ServerInfoSummary: the same fields a server reports about itself.
absl::StatusOr<ServerInfoSummary> LocalInfo() {
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(EngineOptionsFromFlags());
  if (!engine.ok()) return engine.status();
  ServerInfoSummary info;
  info.version = kVersion;
  const CoreCapabilities& caps = Capabilities();
  info.input_dtypes = caps.input_dtypes;
  info.quant_dtypes = caps.quant_dtypes;
  info.int_bits = caps.int_bits;
  for (OutputLayout l : kOutputLayouts) info.output_forms.push_back(OutputLayoutName(l));
  info.presets = caps.presets;
  info.kernel = std::string((*engine)->kernels().name);
  info.threads = (*engine)->threads();
  info.served_by = "local";
  return info;
}

nlohmann::ordered_json InfoToJson(const ServerInfoSummary& i, bool local) {
  nlohmann::ordered_json j = {{"served_by", i.served_by},
                              {"version", i.version},
                              {"kernel", i.kernel},
                              {"threads", i.threads},
                              {"input_dtypes", i.input_dtypes},
                              {"quant_dtypes", i.quant_dtypes},
                              {"int_bits", i.int_bits},
                              {"output_forms", i.output_forms},
                              {"presets", i.presets}};
  if (local) {
    std::vector<std::string> kernels;
    for (const char* k : {"reference", "avx2", "avx512"}) {
      if (KernelsByName(k) != nullptr) kernels.push_back(k);
    }
    j["available_kernels"] = kernels;
  } else {
    j["max_tensor_bytes"] = i.max_tensor_bytes;
    j["max_message_bytes"] = i.max_message_bytes;
    j["max_streams"] = i.max_streams;
    j["memory_budget_bytes"] = i.memory_budget_bytes;
    j["stream_budget_bytes"] = i.stream_budget_bytes;
    j["output_chunk_bytes"] = i.output_chunk_bytes;
  }
  return j;
}

int Run(const Command& self, const ParsedArgs& args) {
  if (!args.positional.empty()) return UsageError(self, "info takes no arguments");
  if (absl::Status s = CheckModeFlags(args); !s.ok()) {
    return UsageError(self, std::string(s.message()));
  }
  const bool remote = args.Has("server");
  absl::StatusOr<ServerInfoSummary> info =
      remote ? GetServerInfo(ClientOptionsFromFlags()) : LocalInfo();
  if (!info.ok()) return Fail(info.status());
  const nlohmann::ordered_json j = InfoToJson(*info, !remote);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  for (const auto& [key, value] : j.items()) {
    std::string text;
    if (value.is_array()) {
      std::vector<std::string> parts;
      for (const auto& v : value) parts.push_back(v.is_string() ? v.get<std::string>() : v.dump());
      text = absl::StrJoin(parts, ", ");
    } else {
      text = value.is_string() ? value.get<std::string>() : value.dump();
    }
    std::cout << key << ": " << text << "\n";
  }
  return kExitOk;
}

}  // namespace

const Command& InfoCommand() {
  static const Command* command =
      new Command{.name = "info",
                  .summary = "capabilities of local mode or of a server",
                  .usage = kUsage,
                  .flags = FlagSet({kEngineFlags, kRemoteFlags, {"json"}}),
                  .run = Run};
  return *command;
}

}  // namespace rtnq::client::cli
