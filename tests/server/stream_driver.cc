#include "tests/server/stream_driver.h"

#include <utility>

#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/slice.h"

namespace rtnq::server::testing {

void ManualRunner::Post(std::function<void()> task) {
  std::lock_guard<std::mutex> l(mu_);
  tasks_.push_back(std::move(task));
}

bool ManualRunner::RunOne() {
  std::function<void()> task;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (tasks_.empty()) return false;
    task = std::move(tasks_.front());
    tasks_.pop_front();
  }
  task();
  return true;
}

void ManualRunner::RunAll() {
  while (RunOne()) {
  }
}

size_t ManualRunner::pending() const {
  std::lock_guard<std::mutex> l(mu_);
  return tasks_.size();
}

DriverContext::DriverContext(const ServerOptions& options, TaskRunner* runner)
    : options_(options),
      engine_(*Engine::Create(EngineOptions{1, ""})),
      metrics_("driver", std::string(engine_->kernels().name)),
      memory_(std::make_unique<MemoryBudget>(options.memory_budget_bytes)) {
  svc_.options = &options_;
  svc_.engine = engine_.get();
  svc_.pool = runner != nullptr ? runner : &manual_;
  svc_.memory = memory_.get();
  svc_.metrics = &metrics_;
  svc_.streams = &streams_;
}

DrivenStream::DrivenStream(DriverContext& ctx, absl::Status admission) {
  stream_ = QuantizeReactor::Start(ctx.svc(), *this, "driver", std::move(admission));
}

DrivenStream::~DrivenStream() = default;

void DrivenStream::StartRead(grpc::ByteBuffer* request) { read_ = request; }

void DrivenStream::StartWrite(const grpc::ByteBuffer* response) {
  write_ = response;
  grpc::ByteBuffer copy(*response);
  v1::QuantizeResponse r;
  (void)grpc::SerializationTraits<v1::QuantizeResponse>::Deserialize(&copy, &r);
  responses_.push_back(std::move(r));
}

void DrivenStream::Finish(const grpc::Status& status) {
  ++finishes_;
  status_ = status;
}

void DrivenStream::TryCancel() { cancelled_ = true; }

bool DrivenStream::IsCancelled() { return cancelled_; }

bool DrivenStream::DeliverRaw(const std::string& bytes) {
  if (read_ == nullptr || finished()) return false;
  grpc::Slice slice(bytes);
  *read_ = grpc::ByteBuffer(&slice, 1);
  read_ = nullptr;
  stream_->OnReadDone(true);
  return true;
}

bool DrivenStream::Deliver(const v1::QuantizeRequest& request) {
  return DeliverRaw(request.SerializeAsString());
}

bool DrivenStream::HalfClose() {
  if (read_ == nullptr || finished()) return false;
  read_ = nullptr;
  stream_->OnReadDone(false);
  return true;
}

bool DrivenStream::CompleteWrite(bool ok) {
  if (write_ == nullptr) return false;
  write_ = nullptr;
  stream_->OnWriteDone(ok && !cancelled_);
  return true;
}

void DrivenStream::Cancel() {
  cancelled_ = true;
  if (!cancel_delivered_) {
    cancel_delivered_ = true;
    stream_->OnCancel();
  }
  if (read_ != nullptr) {
    read_ = nullptr;
    stream_->OnReadDone(false);
  }
  CompleteWrite(false);
}

bool DrivenStream::Done() {
  if (!finished()) return false;
  if (done_) return true;
  // gRPC completes operations still in flight after Finish with ok = false, then OnDone.
  if (read_ != nullptr) {
    read_ = nullptr;
    stream_->OnReadDone(false);
  }
  CompleteWrite(false);
  done_ = true;
  stream_->OnDone();
  return true;
}

}  // namespace rtnq::server::testing
