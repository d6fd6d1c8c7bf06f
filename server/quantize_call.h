// The gRPC side of one Quantize call: a callback reactor over raw messages that forwards its
// events to the stream's state machine (QuantizeReactor) and carries out its operations.
#pragma once

#include <memory>

#include "absl/status/status.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "server/quantize_reactor.h"
#include "server/service_context.h"
#include "server/stream_transport.h"

namespace rtnq::server {

/// Created per call by QuantizerService; gRPC holds it until OnDone, which deletes it.
class QuantizeCall final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                           public StreamTransport {
 public:
  QuantizeCall(ServiceContext& svc, grpc::CallbackServerContext* ctx, absl::Status admission);

  void OnReadDone(bool ok) override { stream_->OnReadDone(ok); }
  void OnWriteDone(bool ok) override { stream_->OnWriteDone(ok); }
  void OnCancel() override { stream_->OnCancel(); }
  void OnDone() override;

  void StartRead(grpc::ByteBuffer* request) override {
    grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>::StartRead(request);
  }
  void StartWrite(const grpc::ByteBuffer* response) override {
    grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>::StartWrite(response);
  }
  void Finish(const grpc::Status& status) override {
    grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>::Finish(status);
  }
  void TryCancel() override;
  bool IsCancelled() override;

 private:
  grpc::CallbackServerContext* const ctx_;
  std::shared_ptr<QuantizeReactor> stream_;
};

}  // namespace rtnq::server
