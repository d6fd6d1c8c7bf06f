#include "client/cli/command.h"

#include <iostream>

namespace rtnq::client::cli {

const std::vector<Command>& Commands() {
  static const std::vector<Command>* all =
      new std::vector<Command>{QuantizeCommand(), PlanCommand(),   InfoCommand(), HealthCommand(),
                               InspectCommand(),  VerifyCommand(), SynthCommand()};
  return *all;
}

int UsageError(const Command& command, const std::string& message) {
  std::cerr << "rtnq: " << message << "\n\nusage: " << command.usage
            << "\nexit status: 0 success, 1 failure, 2 bad usage\n";
  return kExitUsage;
}

int Fail(const absl::Status& status) {
  std::cerr << "rtnq: error: " << status.message() << "\n";
  return kExitFailed;
}

}  // namespace rtnq::client::cli
