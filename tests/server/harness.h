// Test harness for the server suites: a real server on 127.0.0.1:0, request builders, and a
// client that runs one Quantize session and reassembles its results.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "rtnq/v1/rtnq.grpc.pb.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/server_options.h"

namespace rtnq::server::testing {

/// Options for an in-process test server: loopback, port 0, 2 threads, short timeouts.
ServerOptions TestOptions();

/// Starts a server or fails the test (ASSERT-style: returns null after ADD_FAILURE).
std::unique_ptr<RtnqServer> StartServer(const ServerOptions& options);

/// A plaintext channel to 127.0.0.1:port that accepts 64 MiB messages.
std::shared_ptr<grpc::Channel> Connect(int port);
std::unique_ptr<v1::Quantizer::Stub> Stub(int port);

/// A tensor as a client sends it.
struct Tensor {
  std::string name;
  std::string dtype = "F32";
  std::vector<int64_t> shape;
  std::string data;
};

/// Random normal-ish values of `dtype` ("F32", "F16", "BF16") for `shape`, deterministic per seed.
Tensor RandomTensor(std::string name, std::string dtype, std::vector<int64_t> shape, uint32_t seed);

v1::QuantizeRequest ConfigRequest(const v1::SessionConfig& config);
v1::QuantizeRequest HeaderRequest(const std::string& name, const std::string& dtype,
                                  const std::vector<int64_t>& shape, int64_t total_bytes,
                                  std::optional<uint32_t> crc32c = std::nullopt);
v1::QuantizeRequest ChunkRequest(std::string data);
/// Header then chunks of at most `chunk_bytes`.
std::vector<v1::QuantizeRequest> TensorRequests(const Tensor& t, size_t chunk_bytes = 1 << 20,
                                                std::optional<uint32_t> crc32c = std::nullopt);

/// One tensor's answer, reassembled.
struct TensorResult {
  std::optional<v1::ResultHeader> header;
  std::vector<std::string> outputs;  ///< bytes per output index
  std::optional<v1::TensorMetrics> metrics;
  std::optional<v1::TensorError> error;
};

/// A whole session's answer.
struct SessionResult {
  grpc::Status status;
  std::optional<v1::SessionStarted> started;
  std::optional<v1::SessionSummary> summary;
  std::vector<std::string> order;  ///< tensor names in answer order
  std::map<std::string, TensorResult> tensors;
  /// Violations of the response order the harness saw ("" when none).
  std::string order_error;
};

/// A session's requests: `config`, then each tensor's header and chunks of at most `chunk`.
std::vector<v1::QuantizeRequest> SessionRequests(const v1::SessionConfig& config,
                                                 const std::vector<Tensor>& tensors, size_t chunk);

/// Runs one session: writes `requests` from a thread while reading every response, then
/// half-closes and finishes. `setup` may add metadata to the context. Deadline 60 s.
SessionResult RunSession(v1::Quantizer::Stub& stub,
                         const std::vector<v1::QuantizeRequest>& requests,
                         const std::function<void(grpc::ClientContext&)>& setup = {});

/// Runs every session on its own stream (and channel), all at once.
std::vector<SessionResult> RunConcurrently(
    int port, const std::vector<std::vector<v1::QuantizeRequest>>& sessions);

/// A session of raw request messages (bytes as given, not necessarily valid protobuf, so that a
/// test can send what the generated stub would refuse to build) through gRPC's generic stub:
/// writes them all, half-closes, then reads every response. `setup` may add metadata to the
/// context. Deadline 30 s.
struct RawSessionResult {
  grpc::Status status;
  std::vector<v1::QuantizeResponse> responses;
};
RawSessionResult RunRawSession(int port, const std::vector<std::string>& messages,
                               const std::function<void(grpc::ClientContext&)>& setup = {});

/// Polls `done` every 5 ms until it holds or `seconds` pass; its last value.
bool WaitFor(const std::function<bool()>& done, double seconds = 10);

/// Accumulates responses into a SessionResult, checking their order.
class ResultCollector {
 public:
  void Add(const v1::QuantizeResponse& r);
  SessionResult& result() { return result_; }
  /// True once the current tensor's metrics or error arrived.
  bool tensor_done() const { return current_.empty(); }

 private:
  SessionResult result_;
  std::string current_;
};

/// A session driven step by step from one thread: each Send writes a tensor and reads its whole
/// answer (fine for small tensors; big ones need RunSession's concurrent writer).
class InteractiveSession {
 public:
  /// Opens the stream, sends `config` and reads the SessionStarted answer.
  InteractiveSession(v1::Quantizer::Stub& stub, const v1::SessionConfig& config,
                     const std::function<void(grpc::ClientContext&)>& setup = {});
  /// False once the stream broke (write or read failed).
  bool ok() const { return ok_; }
  /// Sends one tensor and reads its answer.
  TensorResult Send(const Tensor& t, size_t chunk_bytes = 1 << 20);
  /// Half-closes, reads the rest and finishes.
  SessionResult Close();
  grpc::ClientContext& context() { return ctx_; }
  grpc::ClientReaderWriter<v1::QuantizeRequest, v1::QuantizeResponse>& stream() { return *stream_; }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::QuantizeRequest, v1::QuantizeResponse>> stream_;
  ResultCollector collector_;
  bool ok_ = true;
};

/// A plain TCP connection to 127.0.0.1:port (for HTTP clients that misbehave), closed by the
/// destructor. Sends and receives time out after 5 s.
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  /// False when the bytes could not all be sent (e.g. the server closed the connection).
  bool Send(const std::string& bytes);
  /// Everything the server sends until it closes the connection or `seconds` pass.
  std::string ReceiveAll(double seconds = 5);
  /// True when the server has closed the connection (or reset it) within `seconds`, whatever it
  /// sent first.
  bool ClosedByServer(double seconds);

 private:
  // Reads until the server closes the connection (true) or `seconds` pass (false), appending
  // what arrives to `out` when given.
  bool Drain(double seconds, std::string* out);

  int fd_ = -1;
};

/// GET http://127.0.0.1:port/metrics over a plain socket; the body (empty on failure).
std::string ScrapeMetrics(int port);

/// The value of one sample line `name{labels}` (labels in the exposition's order) or of `name`,
/// -1 when absent.
double MetricValue(const std::string& text, const std::string& series);

/// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Writes a self-signed certificate (it is its own CA) `dir/stem.crt` with key `dir/stem.key`
/// for common name `cn`, valid for localhost and 127.0.0.1, made with openssl. False (after
/// ADD_FAILURE) when openssl fails.
bool MakeCert(const TempDir& dir, const std::string& stem, const std::string& cn);

}  // namespace rtnq::server::testing
