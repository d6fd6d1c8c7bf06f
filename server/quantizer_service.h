// The rtnq.v1.Quantizer service: admission (token, shutdown) and the two RPCs.
#pragma once

#include "grpcpp/support/server_callback.h"
#include "rtnq/v1/rtnq.grpc.pb.h"
#include "server/service_context.h"

namespace rtnq::server {

/// Callback-API implementation of rtnq.v1.Quantizer over a shared ServiceContext. Quantize
/// takes raw messages and parses them itself (request_codec.h): a message that does not parse
/// must be an error, not what gRPC's generated code makes of it (the end of the stream).
class QuantizerService final
    : public v1::Quantizer::WithRawCallbackMethod_Quantize<
          v1::Quantizer::WithCallbackMethod_GetServerInfo<v1::Quantizer::Service>> {
 public:
  explicit QuantizerService(ServiceContext& svc) : svc_(svc) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Quantize(
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
