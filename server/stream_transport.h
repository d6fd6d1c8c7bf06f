// What a Quantize stream's state machine needs of its call: gRPC's ServerBidiReactor operations
// on raw messages. QuantizeCall implements it over gRPC; tests and the fuzzer drive a stream
// through their own implementation, without the network.
#pragma once

#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/status.h"

namespace rtnq::server {

/// One call's operations. The stream calls them with its lock held, never after Finish.
class StreamTransport {
 public:
  virtual ~StreamTransport() = default;
  /// Reads the next request into `*request`; the stream's OnReadDone(ok) follows.
  virtual void StartRead(grpc::ByteBuffer* request) = 0;
  /// Writes `*response` (kept alive until OnWriteDone(ok) follows).
  virtual void StartWrite(const grpc::ByteBuffer* response) = 0;
  /// Ends the call; called exactly once.
  virtual void Finish(const grpc::Status& status) = 0;
  /// Cancels the call, completing the operations in flight with ok = false.
  virtual void TryCancel() = 0;
  /// True when the client cancelled (or the call broke): a failed read is not a half-close.
  virtual bool IsCancelled() = 0;
};

}  // namespace rtnq::server
