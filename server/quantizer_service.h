// The rtnq.v1.Quantizer service: admission (token, shutdown) and the two RPCs.
#pragma once

#include "grpcpp/support/server_callback.h"
#include "rtnq/v1/rtnq.grpc.pb.h"
#include "server/service_context.h"

namespace rtnq::server {

/// Callback-API implementation of rtnq.v1.Quantizer over a shared ServiceContext.
class QuantizerService final : public v1::Quantizer::CallbackService {
 public:
  explicit QuantizerService(ServiceContext& svc) : svc_(svc) {}

  grpc::ServerBidiReactor<v1::QuantizeRequest, v1::QuantizeResponse>* Quantize(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* ctx,
                                          const v1::GetServerInfoRequest* request,
                                          v1::ServerInfo* response) override;

 private:
  /// OK, UNAUTHENTICATED (token) or UNAVAILABLE (shutting down).
  absl::Status Admit(grpc::CallbackServerContext* ctx) const;

  ServiceContext& svc_;
};

/// The version string a server reports when ServerOptions.version is empty.
const char* BuiltInVersion();

}  // namespace rtnq::server
