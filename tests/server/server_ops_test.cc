// Operating the server: concurrency and backpressure, cancellation, idle timeout, token auth,
// TLS and mTLS, /metrics, health and graceful shutdown.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/files.h"
#include "tests/server/harness.h"

namespace rtnq::server::testing {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// A 4 MiB global budget, for many streams to contend for.
ServerOptions SmallBudget(int64_t stream_budget, int64_t max_message) {
  ServerOptions o = TestOptions();
  o.memory_budget_bytes = 4 << 20;
  o.stream_budget_bytes = stream_budget;
  o.max_message_bytes = max_message;
  return o;
}

// The bound of memory_budget.h: the budget plus one message per stream; all released at the end.
void ExpectWithinBudget(const RtnqServer& server, const ServerOptions& o, int streams) {
  ::testing::Test::RecordProperty("peak_inflight_bytes", std::to_string(server.memory().peak()));
  EXPECT_LE(server.memory().peak(), o.memory_budget_bytes + streams * o.max_message_bytes);
  EXPECT_EQ(server.memory().used(), 0);
}

// Each concurrent result is complete and byte-identical to the same session run alone.
void ExpectSameAsAlone(int port, const std::vector<std::vector<v1::QuantizeRequest>>& sessions,
                       const std::vector<SessionResult>& concurrent, int tensors_per_session) {
  auto stub = Stub(port);
  for (size_t i = 0; i < sessions.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(concurrent[i].status.ok()) << concurrent[i].status.error_message();
    EXPECT_EQ(concurrent[i].order_error, "");
    ASSERT_TRUE(concurrent[i].summary.has_value());
    EXPECT_EQ(concurrent[i].summary->tensors_ok(), tensors_per_session);
    const SessionResult alone = RunSession(*stub, sessions[i]);
    ASSERT_TRUE(alone.status.ok());
    for (const auto& [name, t] : alone.tensors) {
      ASSERT_TRUE(concurrent[i].tensors.count(name));
      EXPECT_TRUE(concurrent[i].tensors.at(name).outputs == t.outputs) << name;
    }
  }
}

TEST(ConcurrencyTest, SixteenStreamsUnderASmallBudgetGiveTheSameBytesAsOne) {
  const ServerOptions o = SmallBudget(1 << 20, (256 << 10) + 1024);
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  constexpr int kStreams = 16;
  const v1::OutputForm forms[] = {v1::OUTPUT_FORM_FAKE_QUANT, v1::OUTPUT_FORM_CODES,
                                  v1::OUTPUT_FORM_PACKED_INC, v1::OUTPUT_FORM_PACKED_GPTQ};
  std::vector<std::vector<v1::QuantizeRequest>> sessions;
  for (int i = 0; i < kStreams; ++i) {
    v1::SessionConfig config;
    config.set_output_form(forms[i % 4]);
    if (i % 3 == 0) config.mutable_default_config()->set_group_dim(i % 2);  // buffered or not
    if (i % 5 == 0) config.mutable_default_config()->set_scheme(v1::SCHEME_SYM);
    std::vector<Tensor> tensors;
    for (int k = 0; k < 4; ++k) {
      tensors.push_back(RandomTensor(absl::StrCat("s", i, ".t", k, ".weight"),
                                     k % 2 ? "BF16" : "F32", {256, 512}, i * 10 + k));
    }
    sessions.push_back(SessionRequests(config, tensors, 200 << 10));
  }
  const std::vector<SessionResult> concurrent = RunConcurrently(server->port(), sessions);
  ExpectWithinBudget(*server, o, kStreams);
  ExpectSameAsAlone(server->port(), sessions, concurrent, 4);
}

// Row-streamed tensors with a packed output keep their codes until the tensor ends. Those codes
// (and the packed outputs) are reserved at the header like a whole tensor, so many streams
// cannot pile up codes beyond the budget (each stream here would keep 0.6 MiB: 10 MiB in all).
TEST(ConcurrencyTest, ManyPackedGptqStreamsStayWithinTheBudget) {
  const ServerOptions o = SmallBudget(4 << 20, (64 << 10) + 1024);
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  constexpr int kStreams = 16;
  std::vector<std::vector<v1::QuantizeRequest>> sessions;
  for (int i = 0; i < kStreams; ++i) {
    v1::SessionConfig config;
    config.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
    config.mutable_default_config()->set_bits(4);
    config.mutable_default_config()->set_group_size(32);
    std::vector<Tensor> tensors;
    for (int k = 0; k < 2; ++k) {
      tensors.push_back(
          RandomTensor(absl::StrCat("s", i, ".t", k, ".weight"), "F32", {512, 1024}, i * 10 + k));
    }
    sessions.push_back(SessionRequests(config, tensors, 64 << 10));
  }
  const std::vector<SessionResult> concurrent = RunConcurrently(server->port(), sessions);
  // Reservations never overcommit; the only excess is memory_budget.h's one message per stream.
  ExpectWithinBudget(*server, o, kStreams);
  ExpectSameAsAlone(server->port(), sessions, concurrent, 2);
}

TEST(ConcurrencyTest, ATensorLargerThanTheBudgetsStillCompletes) {
  ServerOptions o = TestOptions();
  o.memory_budget_bytes = 1 << 20;
  o.stream_budget_bytes = 256 << 10;
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->port());
  // Row-streamed, buffered whole, and row-streamed with its codes reserved for packing.
  for (int variant : {1, 0, 2}) {
    SCOPED_TRACE(variant);
    v1::SessionConfig config;
    config.mutable_default_config()->set_group_dim(variant == 0 ? 0 : 1);
    if (variant == 2) config.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
    const SessionResult r = RunSession(
        *stub,
        SessionRequests(config, {RandomTensor("big.weight", "F32", {1024, 1024}, 1)}, 1 << 20));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.summary->tensors_ok(), 1);
  }
  EXPECT_EQ(server->memory().used(), 0);
}

// On a fresh server, opens a stream, sends the config, a header and part (or all) of the data,
// then cancels; everything the stream held must be released.
void CancelMidTensor(const v1::SessionConfig& config, bool send_all) {
  auto server = StartServer(TestOptions());
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->port());
  grpc::ClientContext ctx;
  auto stream = stub->Quantize(&ctx);
  const Tensor t = RandomTensor("big.weight", "F32", {1024, 2048}, 1);  // 8 MiB
  ASSERT_TRUE(stream->Write(ConfigRequest(config)));
  const auto requests = TensorRequests(t, 1 << 20);
  const size_t n = send_all ? requests.size() : requests.size() / 2;
  for (size_t i = 0; i < n; ++i) ASSERT_TRUE(stream->Write(requests[i]));
  // Data reached the server (row streaming may already have released it again).
  EXPECT_TRUE(WaitFor([&] { return server->memory().peak() >= (1 << 20); }));
  ctx.TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitFor([&] { return server->metrics().inflight_bytes() == 0; }))
      << server->metrics().inflight_bytes();
  EXPECT_TRUE(WaitFor([&] { return server->active_streams() == 0; }));
  EXPECT_EQ(server->memory().used(), 0);
  // The server still serves.
  EXPECT_TRUE(
      RunSession(*stub, SessionRequests(v1::SessionConfig(),
                                        {RandomTensor("a.weight", "F32", {8, 64}, 1)}, 1000))
          .status.ok());
}

TEST(CancelTest, RowStreamedTensorReleasesEverything) {
  CancelMidTensor(v1::SessionConfig(), false);
}

TEST(CancelTest, BufferedTensorReleasesItsReservation) {
  v1::SessionConfig buffered;
  buffered.mutable_default_config()->set_group_dim(0);
  CancelMidTensor(buffered, false);
}

TEST(CancelTest, PackedTensorReleasesItsCodesReservation) {
  v1::SessionConfig packed;  // row-streamed, its codes reserved at the header
  packed.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
  CancelMidTensor(packed, false);
}

TEST(CancelTest, RunningQuantizationIsCancelled) {
  v1::SessionConfig slow;  // MSE search over 8 MiB: cancelled while it runs
  slow.mutable_default_config()->set_enable_mse_search(true);
  const auto start = Clock::now();
  CancelMidTensor(slow, true);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 10);
}

TEST(IdleTest, AStreamThatSendsNothingEnds) {
  ServerOptions o = TestOptions();
  o.idle_timeout_seconds = 0.3;
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->port());
  InteractiveSession s(*stub, v1::SessionConfig());
  ASSERT_TRUE(s.ok());
  const auto start = Clock::now();
  v1::QuantizeResponse r;
  EXPECT_FALSE(s.stream().Read(&r));  // blocks until the server ends the stream
  const grpc::Status status = s.stream().Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(status.error_message(), HasSubstr("idle timeout"));
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 5);
}

TEST(IdleTest, AClientThatStopsReceivingIsCutOff) {
  ServerOptions o = TestOptions();
  o.idle_timeout_seconds = 0.3;
  o.stream_budget_bytes = 4 << 20;
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->port());
  // 32 MiB in, 32 MiB out; built before the stream starts so that the client is never idle.
  const auto requests = TensorRequests(RandomTensor("big.weight", "F32", {4096, 2048}, 1), 1 << 20);
  grpc::ClientContext ctx;
  auto stream = stub->Quantize(&ctx);
  std::thread writer([&] {
    if (!stream->Write(ConfigRequest(v1::SessionConfig()))) return;
    for (const auto& r : requests) {
      if (!stream->Write(r)) break;
    }
  });
  // Never read: the server's writes stall, its reads pause, and the idle timeout ends it.
  EXPECT_TRUE(WaitFor([&] { return server->memory().peak() > 0; }));
  EXPECT_TRUE(WaitFor([&] { return server->active_streams() == 0; }));
  EXPECT_EQ(server->memory().used(), 0);
  // The client side still holds unread responses; cancelling lets Finish return.
  ctx.TryCancel();
  writer.join();
  EXPECT_FALSE(stream->Finish().ok());
}

TEST(AuthTest, BearerTokenIsRequired) {
  TempDir dir;
  std::ofstream(dir.File("token")) << "s3cret-token\n";
  ServerOptions o = TestOptions();
  o.auth_token_file = dir.File("token");
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->port());
  auto info = [&](const char* authorization) {
    grpc::ClientContext ctx;
    if (authorization != nullptr) ctx.AddMetadata("authorization", authorization);
    v1::ServerInfo out;
    return stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &out);
  };
  EXPECT_EQ(info(nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(info("Bearer wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(info("Basic s3cret-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(info("Bearer s3cret-token").ok());

  const auto requests =
      SessionRequests(v1::SessionConfig(), {RandomTensor("a.weight", "F32", {8, 64}, 1)}, 1000);
  const SessionResult refused = RunSession(*stub, requests);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("authorization"));
  const SessionResult wrong = RunSession(
      *stub, requests, [](grpc::ClientContext& c) { c.AddMetadata("authorization", "Bearer x"); });
  EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const SessionResult accepted = RunSession(*stub, requests, [](grpc::ClientContext& c) {
    c.AddMetadata("authorization", "Bearer s3cret-token");
  });
  EXPECT_TRUE(accepted.status.ok()) << accepted.status.error_message();
}

TEST(AuthTest, MissingTokenFileFailsStart) {
  ServerOptions o = TestOptions();
  o.auth_token_file = "/nonexistent/token";
  auto s = RtnqServer::Start(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--auth_token_file"));
}

grpc::Status Ping(const std::shared_ptr<grpc::ChannelCredentials>& creds, int port) {
  auto stub = v1::Quantizer::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), creds));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ServerInfo out;
  return stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &out);
}

std::string Read(const std::string& path) { return *ReadSmallFile(path, "test"); }

TEST(TlsTest, TlsClientAcceptedPlaintextRejected) {
  TempDir dir;
  ASSERT_TRUE(MakeCert(dir, "server", "localhost"));
  ServerOptions o = TestOptions();
  o.tls_cert_file = dir.File("server.crt");
  o.tls_key_file = dir.File("server.key");
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = Read(dir.File("server.crt"));
  EXPECT_TRUE(Ping(grpc::SslCredentials(ssl), server->port()).ok());
  EXPECT_FALSE(Ping(grpc::InsecureChannelCredentials(), server->port()).ok());
  // A TLS client that does not trust this certificate is refused too.
  TempDir other;
  ASSERT_TRUE(MakeCert(other, "other", "localhost"));
  grpc::SslCredentialsOptions untrusting;
  untrusting.pem_root_certs = Read(other.File("other.crt"));
  EXPECT_FALSE(Ping(grpc::SslCredentials(untrusting), server->port()).ok());
}

TEST(TlsTest, MutualTlsRequiresAClientCertificate) {
  TempDir dir;
  ASSERT_TRUE(MakeCert(dir, "server", "localhost"));
  ASSERT_TRUE(MakeCert(dir, "client", "rtnq-test-client"));
  ASSERT_TRUE(MakeCert(dir, "stranger", "stranger"));
  ServerOptions o = TestOptions();
  o.tls_cert_file = dir.File("server.crt");
  o.tls_key_file = dir.File("server.key");
  o.tls_client_ca_file = dir.File("client.crt");
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = Read(dir.File("server.crt"));
  EXPECT_FALSE(Ping(grpc::SslCredentials(ssl), server->port()).ok());  // no client cert
  grpc::SslCredentialsOptions stranger = ssl;
  stranger.pem_private_key = Read(dir.File("stranger.key"));
  stranger.pem_cert_chain = Read(dir.File("stranger.crt"));
  EXPECT_FALSE(Ping(grpc::SslCredentials(stranger), server->port()).ok());
  ssl.pem_private_key = Read(dir.File("client.key"));
  ssl.pem_cert_chain = Read(dir.File("client.crt"));
  EXPECT_TRUE(Ping(grpc::SslCredentials(ssl), server->port()).ok());
}

TEST(TlsTest, KeyWithoutCertFailsStart) {
  ServerOptions o = TestOptions();
  o.tls_key_file = "/tmp/key.pem";
  EXPECT_EQ(RtnqServer::Start(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MetricsTest, ScrapedCountersMove) {
  ServerOptions o = TestOptions();
  o.metrics_listen = "127.0.0.1:0";
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->metrics_port(), 0);
  const std::string quantized = "rtnq_tensors_total{dtype=\"F32\",outcome=\"quantized\"}";
  const std::string before = ScrapeMetrics(server->metrics_port());
  ASSERT_THAT(before, HasSubstr("rtnq_build_info{kernel="));
  EXPECT_EQ(MetricValue(before, "rtnq_active_streams"), 0);
  EXPECT_EQ(MetricValue(before, "rtnq_inflight_bytes"), 0);
  EXPECT_LE(MetricValue(before, quantized), 0);

  auto stub = Stub(server->port());
  const std::vector<Tensor> tensors{RandomTensor("a.weight", "F32", {8, 64}, 1),
                                    RandomTensor("b.weight", "F32", {8, 64}, 2),
                                    RandomTensor("norm.weight", "BF16", {64}, 3)};
  ASSERT_TRUE(RunSession(*stub, SessionRequests(v1::SessionConfig(), tensors, 1000)).status.ok());
  // A protocol violation counts as a rejection.
  EXPECT_FALSE(RunSession(*stub, {v1::QuantizeRequest()}).status.ok());

  const std::string after = ScrapeMetrics(server->metrics_port());
  EXPECT_EQ(MetricValue(after, quantized), 2);
  EXPECT_EQ(MetricValue(after, "rtnq_bytes_processed_total{dtype=\"F32\",outcome=\"quantized\"}"),
            2 * 8 * 64 * 4);
  EXPECT_EQ(MetricValue(after, "rtnq_tensors_total{dtype=\"BF16\",outcome=\"skipped\"}"), 1);
  EXPECT_EQ(MetricValue(after, "rtnq_tensor_duration_seconds_count"), 3);
  EXPECT_EQ(MetricValue(after, "rtnq_stream_duration_seconds_count"), 2);
  EXPECT_EQ(MetricValue(after, "rtnq_rejections_total{reason=\"protocol\"}"), 1);
  EXPECT_EQ(MetricValue(after, "rtnq_inflight_bytes"), 0);
  EXPECT_THAT(after, HasSubstr("rtnq_tensor_duration_seconds_bucket{le=\"0.001\"}"));
}

// Clients that connect to /metrics and then send their request slowly or never: each holds a
// CivetWeb worker until --metrics_request_timeout ends it, so a scrape waits for at most about
// ceil(slow clients / --metrics_threads) timeouts instead of being blocked. Below, at and well
// beyond the worker count.
TEST(MetricsTest, SlowClientsCannotBlockScrapes) {
  ServerOptions o = TestOptions();
  o.metrics_listen = "127.0.0.1:0";
  o.metrics_threads = 2;
  o.metrics_request_timeout_seconds = 0.5;
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  const int port = server->metrics_port();
  const std::string request =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n\r\n";
  for (int n : {1, 2, 3, 8}) {
    SCOPED_TRACE(absl::StrCat(n, " slow clients"));
    // Round robin: silent after connecting, half a request, and a byte every 50 ms (the whole
    // request would take 2.6 s, five timeouts: only a total timeout stops it).
    std::vector<std::unique_ptr<RawConnection>> slow;
    std::vector<std::thread> tricklers;
    std::vector<int> trickle_sent(n, 0);
    for (int i = 0; i < n; ++i) {
      slow.push_back(std::make_unique<RawConnection>(port));
      RawConnection* c = slow.back().get();
      EXPECT_TRUE(c->connected());
      if (i % 3 == 1) {
        EXPECT_TRUE(c->Send(request.substr(0, request.size() / 2)));
      } else if (i % 3 == 2) {
        tricklers.emplace_back([&, c, i] {
          for (char ch : request) {
            if (!c->Send(std::string(1, ch))) return;
            ++trickle_sent[i];
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
        });
      }
    }
    const auto start = Clock::now();
    const std::string body = ScrapeMetrics(port);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    ::testing::Test::RecordProperty(absl::StrCat("scrape_seconds_", n), std::to_string(seconds));
    EXPECT_THAT(body, HasSubstr("rtnq_build_info")) << "after " << seconds << " s";
    // Every slow client is cut off, the trickle before it could finish its request.
    for (int i = 0; i < n; ++i) EXPECT_TRUE(slow[i]->ClosedByServer(10)) << "client " << i;
    for (auto& t : tricklers) t.join();
    for (int i = 2; i < n; i += 3) {
      EXPECT_LT(trickle_sent[i], static_cast<int>(request.size())) << "client " << i;
    }
  }
  // A request asking for keep-alive is answered and its connection closed: no idle connection
  // keeps a worker.
  RawConnection keep(port);
  ASSERT_TRUE(
      keep.Send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_THAT(keep.ReceiveAll(5), HasSubstr("rtnq_build_info"));
  EXPECT_TRUE(keep.ClosedByServer(1));
}

TEST(MetricsTest, BarePortBindsLoopbackAndBadOptionsFailStart) {
  EXPECT_EQ(MetricsBindAddress("9090"), "127.0.0.1:9090");
  EXPECT_EQ(MetricsBindAddress(":9090"), "127.0.0.1:9090");
  EXPECT_EQ(MetricsBindAddress("0.0.0.0:9090"), "0.0.0.0:9090");
  EXPECT_EQ(MetricsBindAddress("[::1]:9090"), "[::1]:9090");
  ServerOptions o = TestOptions();
  o.metrics_listen = "0";
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(ScrapeMetrics(server->metrics_port()), HasSubstr("rtnq_build_info"));
  o.metrics_threads = 0;
  EXPECT_THAT(std::string(RtnqServer::Start(o).status().message()), HasSubstr("--metrics_threads"));
  o.metrics_threads = 1;
  o.metrics_request_timeout_seconds = 0;
  EXPECT_THAT(std::string(RtnqServer::Start(o).status().message()),
              HasSubstr("--metrics_request_timeout"));
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(int port, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(Connect(port));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return resp.status();
}

TEST(ShutdownTest, NotServingWhileInFlightStreamsFinish) {
  auto server = StartServer(TestOptions());
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  using HC = grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(Health(port, ""), HC::SERVING);
  EXPECT_EQ(Health(port, "rtnq.v1.Quantizer"), HC::SERVING);
  auto stub = Stub(port);
  InteractiveSession s(*stub, v1::SessionConfig());
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s.Send(RandomTensor("a.weight", "F32", {8, 64}, 1)).metrics.has_value());

  const auto start = Clock::now();
  std::thread shutdown([&] { server->Shutdown(20); });
  EXPECT_TRUE(WaitFor([&] { return Health(port, "") == HC::NOT_SERVING; }, 5));
  EXPECT_EQ(Health(port, "rtnq.v1.Quantizer"), HC::NOT_SERVING);
  const SessionResult refused = RunSession(
      *stub,
      SessionRequests(v1::SessionConfig(), {RandomTensor("b.weight", "F32", {8, 64}, 2)}, 1000));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  // The stream in flight carries on and finishes normally.
  EXPECT_TRUE(s.Send(RandomTensor("c.weight", "F32", {8, 64}, 3)).metrics.has_value());
  const SessionResult done = s.Close();
  EXPECT_TRUE(done.status.ok()) << done.status.error_message();
  EXPECT_EQ(done.summary->tensors_ok(), 2);
  shutdown.join();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 10);
}

TEST(ShutdownTest, StreamsPastTheGracePeriodAreCancelled) {
  auto server = StartServer(TestOptions());
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->port());
  InteractiveSession s(*stub, v1::SessionConfig());
  ASSERT_TRUE(s.ok());
  const auto start = Clock::now();
  server->Shutdown(0.2);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 5);
  v1::QuantizeResponse r;
  EXPECT_FALSE(s.stream().Read(&r));
  EXPECT_FALSE(s.stream().Finish().ok());
}

}  // namespace
}  // namespace rtnq::server::testing
