#include "server/quantizer_service.h"

#include <optional>

#include "absl/strings/string_view.h"
#include "core/capabilities.h"
#include "core/config/quant_config.h"
#include "proto/status_conversion.h"
#include "rtnq/version.h"  // RTNQ_VERSION, generated from project(VERSION)
#include "server/logging.h"
#include "server/quantize_call.h"
#include "spdlog/spdlog.h"

namespace rtnq::server {

const char* BuiltInVersion() { return RTNQ_VERSION; }

absl::Status QuantizerService::Admit(grpc::CallbackServerContext* ctx) const {
  if (svc_.auth != nullptr) {
    std::optional<absl::string_view> authorization;
    const auto& md = ctx->client_metadata();
    if (auto it = md.find("authorization"); it != md.end()) {
      authorization = absl::string_view(it->second.data(), it->second.size());
    }
    if (absl::Status s = svc_.auth->Check(authorization); !s.ok()) return s;
  }
  if (svc_.draining.load()) {
    return absl::UnavailableError("the server is shutting down; use another replica");
  }
  return absl::OkStatus();
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* QuantizerService::Quantize(
    grpc::CallbackServerContext* ctx) {
  return new QuantizeCall(svc_, ctx, Admit(ctx));
}

grpc::ServerUnaryReactor* QuantizerService::GetServerInfo(grpc::CallbackServerContext* ctx,
                                                          const v1::GetServerInfoRequest*,
                                                          v1::ServerInfo* info) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (absl::Status s = Admit(ctx); !s.ok()) {
    const char* reason =
        s.code() == absl::StatusCode::kUnauthenticated ? "unauthenticated" : "shutting_down";
    svc_.metrics->Rejected(reason);
    spdlog::warn("GetServerInfo refused peer={} reason={}", LogSafe(ctx->peer()), reason);
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  const ServerOptions& o = *svc_.options;
  info->set_version(o.version.empty() ? BuiltInVersion() : o.version);
  const CoreCapabilities& caps = Capabilities();
  for (const std::string& d : caps.input_dtypes) info->add_input_dtypes(d);
  for (const std::string& d : caps.quant_dtypes) info->add_quant_dtypes(d);
  for (int b : caps.int_bits) info->add_int_bits(b);
  for (int f = v1::OutputForm_MIN; f <= v1::OutputForm_MAX; ++f) {
    if (v1::OutputForm_IsValid(f)) info->add_output_forms(v1::OutputForm_Name(f));
  }
  for (const std::string& p : caps.presets) info->add_presets(p);
  info->set_max_tensor_bytes(o.max_tensor_bytes);
  info->set_max_message_bytes(o.max_message_bytes);
  info->set_max_streams(o.max_streams);
  info->set_memory_budget_bytes(o.memory_budget_bytes);
  info->set_stream_budget_bytes(o.stream_budget_bytes);
  info->set_kernel(std::string(svc_.engine->kernels().name));
  info->set_threads(svc_.engine->threads());
  info->set_output_chunk_bytes(o.output_chunk_bytes);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace rtnq::server
