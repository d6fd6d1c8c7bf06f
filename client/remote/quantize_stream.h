// One Quantize stream to one replica, carrying many tensors one after another. While a writer
// thread sends a tensor, the caller's thread reads its answer and hands the output bytes to a
// ResultSink: a client that wrote a whole tensor before reading would deadlock against a server
// that stops reading while its results are not consumed (docs/PROTOCOL.md, backpressure), and
// one that held results whole would need memory in proportion to the tensor.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "client/backend.h"
#include "client/remote/attempt_deadline.h"
#include "grpcpp/grpcpp.h"
#include "rtnq/v1/rtnq.grpc.pb.h"

namespace rtnq::client {

/// The outcome of one tensor on a stream: its result or error, and whether the stream can carry
/// the next tensor (false after a transport failure, a cancellation or a broken answer).
struct TensorAttempt {
  absl::StatusOr<TensorResult> result;
  bool stream_usable = true;
};

/// One open Quantize call. Not thread-safe: one tensor at a time, from one thread.
class QuantizeStream {
 public:
  /// Opens a call on `stub` (with the bearer `token`, "" for none), sends `config` and waits for
  /// SessionStarted, all within one attempt of `deadline`. With `wait_for_ready` the call waits
  /// for a reachable replica (bounded by the deadline only, so only when there is one). Errors:
  /// the call's status (a rejected config is INVALID_ARGUMENT naming the field), or
  /// DEADLINE_EXCEEDED when the deadline fired.
  static absl::StatusOr<std::unique_ptr<QuantizeStream>> Open(
      v1::Quantizer::Stub& stub, const std::string& token, const v1::SessionConfig& config,
      bool wait_for_ready, int64_t chunk_bytes, AttemptDeadline& deadline);
  /// Cancels the call unless End() was called.
  ~QuantizeStream();
  QuantizeStream(const QuantizeStream&) = delete;
  QuantizeStream& operator=(const QuantizeStream&) = delete;

  /// Sends `tensor` (in TensorChunks of chunk_bytes, with `crc` in its header) from a writer
  /// thread while reading its answer into `sink`, within one attempt of the deadline. Returns
  /// once the tensor's data is no longer used. A stream that ended is reported with its status;
  /// a stream the server cancelled (it shut down) as UNAVAILABLE, so the tensor is retried.
  TensorAttempt Quantize(const TensorInput& tensor, uint32_t crc, ResultSink& sink);

  /// Half-closes and drains the answer (the server's summary) within one attempt of the
  /// deadline, so the server counts a completed session. Its outcome does not matter: every
  /// tensor's answer has arrived already.
  void End();

  /// The replica's address as gRPC reports it ("ipv4:127.0.0.1:50051").
  const std::string& peer() const { return peer_; }
  int tensors() const { return tensors_; }  ///< tensors sent on this stream
  /// True when a tensor called `name` was sent on this stream already: the protocol wants names
  /// unique per stream, so sending it again needs a new stream.
  bool Carried(const std::string& name) const { return names_.contains(name); }
  int64_t bytes() const { return bytes_; }  ///< tensor data bytes sent on this stream
  std::chrono::steady_clock::time_point opened() const { return opened_; }

 private:
  enum class After { kUsable, kBroken, kAbandoned };
  struct Answer {
    absl::StatusOr<TensorResult> result;
    After after = After::kUsable;
  };

  QuantizeStream(int64_t chunk_bytes, AttemptDeadline& deadline);
  bool Send(const TensorInput& tensor, uint32_t crc);
  Answer Receive(const std::string& name, ResultSink& sink);
  absl::Status Finish(bool cancelled_here);

  const int64_t chunk_bytes_;
  AttemptDeadline& deadline_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::QuantizeRequest, v1::QuantizeResponse>> stream_;
  v1::QuantizeResponse response_;  // reused: its buffers keep their capacity between messages
  bool finished_ = false;
  std::string peer_;
  int tensors_ = 0;
  absl::flat_hash_set<std::string> names_;
  int64_t bytes_ = 0;
  std::chrono::steady_clock::time_point opened_;
};

}  // namespace rtnq::client
