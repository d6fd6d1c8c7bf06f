#include "bench/e2e/streams.h"

#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "e2e/echo.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "rtnq/v1/rtnq.grpc.pb.h"

namespace rtnq::bench {
namespace {

// A channel with its own TCP connection (a local subchannel pool), so that concurrent streams
// do not share one HTTP/2 transport.
std::shared_ptr<grpc::Channel> LoopbackChannel(int port) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// One stream's protocol: how a request carries a header or a chunk, and what a response adds.
template <typename Request, typename Response>
struct Framing {
  std::function<void(Request&, const BenchTensor&)> header;
  std::function<void(Request&, const char*, size_t)> chunk;
  std::function<void(const Response&, StreamsRun&)> answer;
};

// Writes `first` (if any) and every tensor from a writer thread while this thread reads.
template <typename Request, typename Response>
StreamsRun Drive(grpc::ClientReaderWriter<Request, Response>& stream, const Request* first,
                 const std::vector<const BenchTensor*>& tensors, size_t chunk_bytes,
                 const Framing<Request, Response>& framing) {
  int64_t sent = 0;
  std::thread writer([&] {
    Request request;
    if (first != nullptr && !stream.Write(*first)) return;
    for (const BenchTensor* t : tensors) {
      framing.header(request, *t);
      if (!stream.Write(request)) return;
      const std::string& data = *t->data;
      for (size_t off = 0; off < data.size(); off += chunk_bytes) {
        const size_t n = std::min(chunk_bytes, data.size() - off);
        framing.chunk(request, data.data() + off, n);
        if (!stream.Write(request)) return;
        sent += static_cast<int64_t>(n);
      }
    }
    stream.WritesDone();
  });
  StreamsRun run;
  Response response;
  while (stream.Read(&response)) framing.answer(response, run);
  writer.join();
  run.bytes_in = sent;
  const grpc::Status status = stream.Finish();
  if (!status.ok() && run.status.ok()) {
    run.status = absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                              "stream: " + status.error_message());
  }
  return run;
}

// Runs `one(port, tensors)` on `streams` threads and adds up what they moved.
StreamsRun RunConcurrently(
    const Workload& workload, int streams,
    const std::function<StreamsRun(const std::vector<const BenchTensor*>&)>& one) {
  const auto lists = workload.Split(streams);
  std::vector<StreamsRun> runs(streams);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i) threads.emplace_back([&, i] { runs[i] = one(lists[i]); });
  for (auto& t : threads) t.join();
  StreamsRun total;
  total.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const StreamsRun& r : runs) {
    total.bytes_in += r.bytes_in;
    total.bytes_out += r.bytes_out;
    total.tensors_done += r.tensors_done;
    if (total.status.ok()) total.status = r.status;
  }
  return total;
}

}  // namespace

StreamsRun RunEchoStreams(int port, const Workload& workload, int streams, size_t chunk_bytes) {
  const Framing<EchoRequest, EchoResponse> framing{
      .header =
          [](EchoRequest& r, const BenchTensor& t) {
            r.mutable_header()->set_name(t.name);
            r.mutable_header()->set_total_bytes(static_cast<int64_t>(t.data->size()));
          },
      .chunk = [](EchoRequest& r, const char* p, size_t n) { r.set_chunk(p, n); },
      .answer = [](const EchoResponse& r,
                   StreamsRun& run) { run.bytes_out += static_cast<int64_t>(r.chunk().size()); },
  };
  return RunConcurrently(workload, streams, [&](const std::vector<const BenchTensor*>& tensors) {
    auto stub = Echo::NewStub(LoopbackChannel(port));
    grpc::ClientContext ctx;
    auto stream = stub->Stream(&ctx);
    StreamsRun run =
        Drive<EchoRequest, EchoResponse>(*stream, nullptr, tensors, chunk_bytes, framing);
    if (run.status.ok()) run.tensors_done = static_cast<int64_t>(tensors.size());
    return run;
  });
}

StreamsRun RunQuantizeStreams(int port, const v1::SessionConfig& config, const Workload& workload,
                              int streams, size_t chunk_bytes) {
  const Framing<v1::QuantizeRequest, v1::QuantizeResponse> framing{
      .header =
          [](v1::QuantizeRequest& r, const BenchTensor& t) {
            v1::TensorHeader* h = r.mutable_header();
            h->Clear();
            h->set_name(t.name);
            h->set_dtype("F32");
            for (int64_t d : t.shape) h->add_shape(d);
            h->set_total_bytes(static_cast<int64_t>(t.data->size()));
          },
      .chunk = [](v1::QuantizeRequest& r, const char* p,
                  size_t n) { r.mutable_chunk()->mutable_data()->assign(p, n); },
      .answer =
          [](const v1::QuantizeResponse& r, StreamsRun& run) {
            if (r.has_chunk()) run.bytes_out += static_cast<int64_t>(r.chunk().data().size());
            if (r.has_metrics()) ++run.tensors_done;
            if (r.has_error() && run.status.ok()) {
              run.status = absl::InternalError(
                  absl::StrCat(r.error().tensor_name(), ": ", r.error().message()));
            }
          },
  };
  v1::QuantizeRequest first;
  *first.mutable_config() = config;
  return RunConcurrently(workload, streams, [&](const std::vector<const BenchTensor*>& tensors) {
    auto stub = v1::Quantizer::NewStub(LoopbackChannel(port));
    grpc::ClientContext ctx;
    auto stream = stub->Quantize(&ctx);
    StreamsRun run = Drive<v1::QuantizeRequest, v1::QuantizeResponse>(*stream, &first, tensors,
                                                                      chunk_bytes, framing);
    if (run.status.ok() && run.tensors_done != static_cast<int64_t>(tensors.size())) {
      run.status = absl::InternalError(
          absl::StrCat("stream answered ", run.tensors_done, " of ", tensors.size(), " tensors"));
    }
    return run;
  });
}

}  // namespace rtnq::bench
