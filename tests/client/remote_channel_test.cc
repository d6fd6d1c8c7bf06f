// Target parsing, token files, TLS, and the one-shot calls (info, health) against a live server.
#include <fstream>
#include <string>

#include "client/remote/channel.h"
#include "client/remote/server_calls.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/harness.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ResolveTarget, SingleAddressPassesThrough) {
  EXPECT_EQ(*ResolveTarget("example.com:50051"), "example.com:50051");
}

TEST(ResolveTarget, DnsSchemePassesThrough) {
  EXPECT_EQ(*ResolveTarget("dns:///rtnq.svc:50051"), "dns:///rtnq.svc:50051");
}

TEST(ResolveTarget, CommaListResolvesLocalhost) {
  EXPECT_EQ(*ResolveTarget("localhost:5001, 127.0.0.1:5002"), "ipv4:127.0.0.1:5001,127.0.0.1:5002");
}

TEST(ResolveTarget, CommaListIpv6) {
  EXPECT_EQ(*ResolveTarget("[::1]:5001,[::1]:5002"), "ipv6:[::1]:5001,[::1]:5002");
}

TEST(ResolveTarget, BadEntriesAreNamed) {
  EXPECT_THAT(ResolveTarget("127.0.0.1:5001,nope"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'nope'")));
  EXPECT_THAT(ResolveTarget("127.0.0.1:5001,127.0.0.1:x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'127.0.0.1:x'")));
  EXPECT_THAT(ResolveTarget("127.0.0.1:5001,,127.0.0.1:5002"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty entry")));
  EXPECT_THAT(ResolveTarget("127.0.0.1:1,no-such-host.invalid:5"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no-such-host.invalid:5")));
  EXPECT_THAT(ResolveTarget(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Channel, MissingFilesAreNamed) {
  ClientOptions o;
  o.token_file = "/nonexistent/token";
  EXPECT_THAT(ReadToken(o), StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/token")));
  o.token_file = "";
  o.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(MakeChannel(o),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/ca.pem")));
}

TEST(ServerCalls, InfoAndHealth) {
  auto server = server::testing::StartServer(server::testing::TestOptions());
  ClientOptions o;
  o.server = "127.0.0.1:" + std::to_string(server->port());
  auto info = GetServerInfo(o);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->max_tensor_bytes, server::testing::TestOptions().max_tensor_bytes);
  EXPECT_FALSE(info->kernel.empty());
  EXPECT_THAT(info->served_by, HasSubstr("127.0.0.1"));
  auto health = CheckHealth(o);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(*health);
}

TEST(ServerCalls, UnreachableServer) {
  ClientOptions o;
  o.server = "127.0.0.1:1";
  o.deadline_seconds = 5;
  EXPECT_THAT(CheckHealth(o), StatusIs(absl::StatusCode::kUnavailable));
}

// The client's TLS flags against a server that requires client certificates: the right CA and
// certificate get in; a client without a certificate, or trusting another CA, does not.
TEST(ServerCalls, MutualTls) {
  server::testing::TempDir dir;
  ASSERT_TRUE(server::testing::MakeCert(dir, "server", "localhost"));
  ASSERT_TRUE(server::testing::MakeCert(dir, "client", "rtnq-test-client"));
  ASSERT_TRUE(server::testing::MakeCert(dir, "other", "localhost"));
  server::ServerOptions so = server::testing::TestOptions();
  so.tls_cert_file = dir.File("server.crt");
  so.tls_key_file = dir.File("server.key");
  so.tls_client_ca_file = dir.File("client.crt");
  auto server = server::testing::StartServer(so);
  ASSERT_NE(server, nullptr);

  ClientOptions o;
  o.server = "127.0.0.1:" + std::to_string(server->port());
  o.deadline_seconds = 10;
  o.tls_ca_file = dir.File("server.crt");
  o.tls_cert_file = dir.File("client.crt");
  o.tls_key_file = dir.File("client.key");
  auto info = GetServerInfo(o);
  EXPECT_TRUE(info.ok()) << info.status();
  auto health = CheckHealth(o);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(*health);

  ClientOptions no_cert = o;
  no_cert.tls_cert_file.clear();
  no_cert.tls_key_file.clear();
  EXPECT_FALSE(GetServerInfo(no_cert).ok());
  ClientOptions wrong_ca = o;
  wrong_ca.tls_ca_file = dir.File("other.crt");
  EXPECT_FALSE(GetServerInfo(wrong_ca).ok());
  ClientOptions plaintext = o;
  plaintext.tls_ca_file.clear();
  plaintext.tls_cert_file.clear();
  plaintext.tls_key_file.clear();
  EXPECT_FALSE(GetServerInfo(plaintext).ok());
}

}  // namespace
}  // namespace rtnq::client
