#include "bench/e2e/echo_server.h"

#include <signal.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/io/file_io.h"
#include "e2e/echo.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace rtnq::bench {
namespace {

// Reads and answers on the handler thread: one response of 1/divisor of each chunk's bytes,
// written before the next read, as simple as a streaming service can be.
class EchoService final : public Echo::Service {
 public:
  explicit EchoService(int divisor) : divisor_(divisor) {}

 private:
  grpc::Status Stream(grpc::ServerContext*,
                      grpc::ServerReaderWriter<EchoResponse, EchoRequest>* stream) override {
    EchoRequest request;
    EchoResponse response;
    while (stream->Read(&request)) {
      if (request.kind_case() != EchoRequest::kChunk) continue;
      response.mutable_chunk()->assign(request.chunk().data(), request.chunk().size() / divisor_);
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }
  const size_t divisor_;
};

}  // namespace

absl::Status ServeEcho(const std::string& listen, const std::string& port_file,
                       int64_t max_message_bytes, int divisor) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  EchoService service(divisor);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_message_bytes));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return absl::UnavailableError("cannot listen on " + listen);
  if (!port_file.empty()) {
    if (absl::Status s = WriteFileAtomically(port_file, absl::StrCat(port, "\n")); !s.ok()) {
      return s;
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  server->Shutdown();
  return absl::OkStatus();
}

}  // namespace rtnq::bench
