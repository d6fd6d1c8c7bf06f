#include "server/quantize_call.h"

#include <utility>

#include "grpcpp/server_context.h"

namespace rtnq::server {

QuantizeCall::QuantizeCall(ServiceContext& svc, grpc::CallbackServerContext* ctx,
                           absl::Status admission)
    : ctx_(ctx) {
  stream_ = QuantizeReactor::Start(svc, *this, ctx->peer(), std::move(admission));
}

void QuantizeCall::TryCancel() { ctx_->TryCancel(); }

bool QuantizeCall::IsCancelled() { return ctx_->IsCancelled(); }

void QuantizeCall::OnDone() {
  stream_->OnDone();
  delete this;
}

}  // namespace rtnq::server
