#include "client/remote/channel.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"

namespace rtnq::client {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& what) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (text.ok()) return text;
  return absl::Status(text.status().code(),
                      absl::StrCat("cannot read ", what, " file: ", text.status().message()));
}

// Resolves one "host:port" (or "[v6]:port") entry of a comma list to a numeric address.
absl::StatusOr<std::pair<bool, std::string>> ResolveEntry(const std::string& entry) {
  std::string host;
  std::string port;
  if (!entry.empty() && entry[0] == '[') {
    const size_t close = entry.find(']');
    if (close == std::string::npos || close + 1 >= entry.size() || entry[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad server entry '", entry, "'"));
    }
    host = entry.substr(1, close - 1);
    port = entry.substr(close + 2);
  } else {
    const size_t colon = entry.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad server entry '", entry, "': expected host:port"));
    }
    host = entry.substr(0, colon);
    port = entry.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad server entry '", entry, "': expected host:port"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve server entry '", entry, "': ", gai_strerror(rc)));
  }
  // Prefer IPv4 ("localhost" often lists ::1 first while servers listen on 0.0.0.0).
  const addrinfo* pick = res;
  for (const addrinfo* a = res; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  }
  char buf[NI_MAXHOST];
  const int nrc =
      getnameinfo(pick->ai_addr, pick->ai_addrlen, buf, sizeof(buf), nullptr, 0, NI_NUMERICHOST);
  const bool v6 = pick->ai_family == AF_INET6;
  freeaddrinfo(res);
  if (nrc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve server entry '", entry, "'"));
  }
  return std::make_pair(v6, v6 ? absl::StrCat("[", buf, "]:", port) : absl::StrCat(buf, ":", port));
}

}  // namespace

absl::StatusOr<std::string> ResolveTarget(const std::string& server) {
  if (server.empty()) return absl::InvalidArgumentError("empty server address");
  if (server.find("://") != std::string::npos || server.find(',') == std::string::npos) {
    return server;
  }
  std::vector<std::string> v4;
  std::vector<std::string> v6;
  for (absl::string_view piece : absl::StrSplit(server, ',')) {
    const std::string entry(absl::StripAsciiWhitespace(piece));
    if (entry.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("empty entry in server list '", server, "'"));
    }
    RTNQ_ASSIGN_OR_RETURN(auto resolved, ResolveEntry(entry));
    (resolved.first ? v6 : v4).push_back(resolved.second);
  }
  if (!v4.empty() && !v6.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("server list '", server, "' mixes IPv4 and IPv6 addresses"));
  }
  return v4.empty() ? absl::StrCat("ipv6:", absl::StrJoin(v6, ","))
                    : absl::StrCat("ipv4:", absl::StrJoin(v4, ","));
}

absl::StatusOr<std::string> ReadToken(const ClientOptions& options) {
  if (options.token_file.empty()) return std::string();
  RTNQ_ASSIGN_OR_RETURN(std::string token, ReadFile(options.token_file, "token"));
  return std::string(absl::StripAsciiWhitespace(token));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ClientOptions& options) {
  RTNQ_ASSIGN_OR_RETURN(const std::string target, ResolveTarget(options.server));
  std::shared_ptr<grpc::ChannelCredentials> creds;
  const bool tls = !options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
                   !options.tls_key_file.empty();
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      RTNQ_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(options.tls_ca_file, "TLS CA"));
    }
    if (!options.tls_cert_file.empty()) {
      RTNQ_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFile(options.tls_cert_file, "TLS certificate"));
    }
    if (!options.tls_key_file.empty()) {
      RTNQ_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFile(options.tls_key_file, "TLS key"));
    }
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  // A fixed receive window per stream instead of gRPC's bandwidth-delay probing, which grows the
  // windows (up to 1 GiB) whenever the reader falls behind, e.g. while the disk is busy: that,
  // not the chunks, then bounded the client's memory. The window caps each stream's results at
  // window / round-trip time (4 MiB per 1 ms: 4 GB/s).
  if (options.receive_window_bytes > 0) {
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
                static_cast<int>(std::min<int64_t>(options.receive_window_bytes, INT32_MAX)));
  }
  args.SetLoadBalancingPolicyName("round_robin");
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  return grpc::CreateCustomChannel(target, creds, args);
}

void SetupCall(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
}

}  // namespace rtnq::client
