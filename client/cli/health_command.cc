// `rtnq health --server ADDR`: the grpc.health.v1 check, as an exit code a container
// HEALTHCHECK can use.
#include <iostream>

#include "absl/flags/flag.h"
#include "client/cli/command.h"
#include "client/cli/flags.h"
#include "client/remote/server_calls.h"

ABSL_FLAG(std::string, service, "", "health service name (default: the whole server)");

namespace rtnq::client::cli {
namespace {

constexpr double kDefaultHealthDeadlineSeconds = 5;

constexpr char kUsage[] = R"(rtnq health --server ADDR [--service NAME] [--deadline SECONDS]
             [TLS and token flags]
  Prints SERVING and exits 0 when the server reports SERVING; prints the state (or the error) and
  exits 1 otherwise, also when no answer comes within --deadline (default 5 s). Usable as a
  Docker HEALTHCHECK.)";

int Run(const Command& self, const ParsedArgs& args) {
  if (!args.positional.empty()) return UsageError(self, "health takes no arguments");
  if (!args.Has("server")) return UsageError(self, "health needs --server ADDR");
  ClientOptions options = ClientOptionsFromFlags();
  // A health check must answer even when the server hangs.
  if (!args.Has("deadline")) options.deadline_seconds = kDefaultHealthDeadlineSeconds;
  absl::StatusOr<bool> serving = CheckHealth(options, absl::GetFlag(FLAGS_service));
  if (!serving.ok()) return Fail(serving.status());
  std::cout << (*serving ? "SERVING" : "NOT_SERVING") << "\n";
  return *serving ? kExitOk : kExitFailed;
}

}  // namespace

const Command& HealthCommand() {
  static const Command* command =
      new Command{.name = "health",
                  .summary = "exit 0 when a server is SERVING (container HEALTHCHECK)",
                  .usage = kUsage,
                  .flags = FlagSet({kRemoteFlags, {"service"}}),
                  .run = Run};
  return *command;
}

}  // namespace rtnq::client::cli
