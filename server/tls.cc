#include "server/tls.h"

#include "grpcpp/security/server_credentials.h"
#include "server/files.h"

namespace rtnq::server {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options) {
  const bool cert = !options.tls_cert_file.empty(), key = !options.tls_key_file.empty();
  if (!cert && !key) {
    if (!options.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca_file needs --tls_cert_file and --tls_key_file");
    }
    return grpc::InsecureServerCredentials();
  }
  if (cert != key) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  auto chain = ReadSmallFile(options.tls_cert_file, "--tls_cert_file");
  if (!chain.ok()) return chain.status();
  auto private_key = ReadSmallFile(options.tls_key_file, "--tls_key_file");
  if (!private_key.ok()) return private_key.status();
  pair.cert_chain = *std::move(chain);
  pair.private_key = *std::move(private_key);
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!options.tls_client_ca_file.empty()) {
    auto ca = ReadSmallFile(options.tls_client_ca_file, "--tls_client_ca_file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  } else {
    ssl.client_certificate_request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace rtnq::server
