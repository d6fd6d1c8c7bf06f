// The remote backend: sessions are rtnq.v1 Quantize streams to rtnq servers (one replica or a
// round_robin set), with transient failures retried on a new stream.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/backend.h"
#include "client/remote/client_options.h"
#include "grpcpp/grpcpp.h"

namespace rtnq::client {

/// Backend whose sessions run on rtnq servers. Thread-safe; each session is one stream.
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
