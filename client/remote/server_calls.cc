#include "client/remote/server_calls.h"

#include <chrono>

#include "client/remote/channel.h"
#include "core/status_macros.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/status_conversion.h"
#include "rtnq/v1/rtnq.grpc.pb.h"

namespace rtnq::client {
namespace {

// Sets the token and the deadline (when configured) of a unary call.
void SetupUnary(grpc::ClientContext& ctx, const ClientOptions& options, const std::string& token) {
  SetupCall(ctx, token);
  if (options.deadline_seconds > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::duration_cast<std::chrono::system_clock::duration>(
                         std::chrono::duration<double>(options.deadline_seconds)));
  }
}

}  // namespace

absl::StatusOr<ServerInfoSummary> GetServerInfo(const ClientOptions& options) {
  RTNQ_ASSIGN_OR_RETURN(auto channel, MakeChannel(options));
  RTNQ_ASSIGN_OR_RETURN(const std::string token, ReadToken(options));
  auto stub = v1::Quantizer::NewStub(channel);
  grpc::ClientContext ctx;
  SetupUnary(ctx, options, token);
  v1::ServerInfo info;
  const grpc::Status st = stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
  if (!st.ok()) return FromGrpcStatus(st);
  ServerInfoSummary s;
  s.version = info.version();
  s.input_dtypes.assign(info.input_dtypes().begin(), info.input_dtypes().end());
  s.quant_dtypes.assign(info.quant_dtypes().begin(), info.quant_dtypes().end());
  s.int_bits.assign(info.int_bits().begin(), info.int_bits().end());
  s.output_forms.assign(info.output_forms().begin(), info.output_forms().end());
  s.presets.assign(info.presets().begin(), info.presets().end());
  s.max_tensor_bytes = info.max_tensor_bytes();
  s.max_message_bytes = info.max_message_bytes();
  s.max_streams = info.max_streams();
  s.memory_budget_bytes = info.memory_budget_bytes();
  s.stream_budget_bytes = info.stream_budget_bytes();
  s.kernel = info.kernel();
  s.threads = info.threads();
  s.output_chunk_bytes = info.output_chunk_bytes();
  s.served_by = ctx.peer();
  return s;
}

absl::StatusOr<bool> CheckHealth(const ClientOptions& options, const std::string& service) {
  RTNQ_ASSIGN_OR_RETURN(auto channel, MakeChannel(options));
  RTNQ_ASSIGN_OR_RETURN(const std::string token, ReadToken(options));
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  SetupUnary(ctx, options, token);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status st = stub->Check(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace rtnq::client
