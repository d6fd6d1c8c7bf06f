// The remote backend: sessions run on rtnq servers (one replica or a round_robin set) over
// rtnq.v1 Quantize streams that each carry many tensors, rotated now and then and replaced when a
// transient failure forces a retry.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/backend.h"
#include "client/remote/client_options.h"
#include "grpcpp/grpcpp.h"

namespace rtnq::client {

/// Backend whose sessions run on rtnq servers. Thread-safe; each session has one stream at a
/// time (client/remote/quantize_stream.h).
class RemoteBackend : public Backend {
 public:
  /// Builds the channel (target, TLS, token); fails naming a bad server entry or unreadable file.
  /// Does not connect: the first session does.
  static absl::StatusOr<std::unique_ptr<RemoteBackend>> Create(ClientOptions options);

  /// Opens a stream and waits for SessionStarted; a rejected config returns the server's
  /// INVALID_ARGUMENT message (naming the field).
  absl::StatusOr<std::unique_ptr<Session>> OpenSession(const SessionSpec& spec) override;
  /// "<server> (round_robin)".
  std::string Describe() const override;

 private:
  RemoteBackend(ClientOptions options, std::shared_ptr<grpc::Channel> channel, std::string token);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
};

}  // namespace rtnq::client
