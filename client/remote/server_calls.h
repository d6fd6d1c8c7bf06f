// One-shot calls to a server: GetServerInfo and the standard grpc.health.v1 check.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/remote/client_options.h"

namespace rtnq::client {

/// The fields of rtnq.v1.ServerInfo, plus the replica that answered.
struct ServerInfoSummary {
  std::string version;
  std::vector<std::string> input_dtypes;
  std::vector<std::string> quant_dtypes;
  std::vector<int> int_bits;
  std::vector<std::string> output_forms;
  std::vector<std::string> presets;
  int64_t max_tensor_bytes = 0;
  int64_t max_message_bytes = 0;
  int max_streams = 0;
  int64_t memory_budget_bytes = 0;
  int64_t stream_budget_bytes = 0;
  std::string kernel;
  int threads = 0;
  int64_t output_chunk_bytes = 0;
  std::string served_by;  ///< peer address of the replica that answered
};

/// Asks one replica of options.server for its ServerInfo.
absl::StatusOr<ServerInfoSummary> GetServerInfo(const ClientOptions& options);

/// grpc.health.v1 Health/Check of `service` ("" = the whole server); true when SERVING.
absl::StatusOr<bool> CheckHealth(const ClientOptions& options, const std::string& service = "");

}  // namespace rtnq::client
