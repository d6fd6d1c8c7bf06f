// RemoteBackend against real in-process servers: byte parity with the core for every output
// form, config and per-tensor errors, round_robin over two replicas with failover, token auth.
#include "client/remote/remote_backend.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "client/checkpoint_util.h"
#include "client/memory_sink.h"
#include "core/engine.h"
#include "core/layout/gptq.h"
#include "core/layout/inc.h"
#include "core/layout/output_plan.h"
#include "core/quantize.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/quant_config_conversion.h"
#include "server/session.h"
#include "tests/client/tensor_request.h"
#include "tests/server/harness.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

SessionSpec Spec(std::string config_json, OutputLayout format = OutputLayout::kFake,
                 GptqFormat gptq_format = GptqFormat::kV1) {
  SessionSpec spec;
  spec.config_json = std::move(config_json);
  spec.format = format;
  spec.gptq_format = gptq_format;
  return spec;
}

using ::rtnq::testing::StatusIs;
using server::testing::RandomTensor;
using server::testing::StartServer;
using server::testing::Tensor;
using server::testing::TestOptions;
using ::testing::HasSubstr;
using testing::Request;

// Quantizes `t` on `session`, its outputs collected in `sink` (or dropped).
absl::StatusOr<TensorResult> Quantize(Session& session, const TensorRequest& t,
                                      MemorySink* sink = nullptr) {
  MemorySink own;
  return session.Quantize(t, sink != nullptr ? *sink : own);
}

// The core's outputs (name, bytes) for `t` under `spec`, computed in-process.
std::vector<std::pair<std::string, std::vector<uint8_t>>> CoreOutputs(const Tensor& t,
                                                                      const SessionSpec& spec,
                                                                      bool* quantized) {
  v1::SessionConfig pc;
  pc.set_config_json(spec.config_json);
  pc.set_output_form(OutputLayoutToProto(spec.format));
  if (spec.format == OutputLayout::kGptq) {
    pc.set_gptq_format(spec.gptq_format == GptqFormat::kV2 ? v1::GPTQ_FORMAT_V2
                                                           : v1::GPTQ_FORMAT_V1);
  }
  auto session = server::SessionFromProto(pc);
  EXPECT_TRUE(session.ok()) << session.status();
  const QuantConfig config = (*session)->resolver.Resolve(t.name)->config;
  QuantizeOptions o;
  o.fake_quant = spec.format == OutputLayout::kFake;
  o.codes = !o.fake_quant;
  auto engine = Engine::Create(EngineOptions{1, ""});
  const TensorRequest req = Request(t);
  auto q = QuantizeTensor(req.tensor, config, o, **engine);
  EXPECT_TRUE(q.ok()) << q.status();
  *quantized = q->quantized;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  if (!q->quantized) {
    out.push_back({t.name, std::vector<uint8_t>(t.data.begin(), t.data.end())});
    return out;
  }
  if (spec.format == OutputLayout::kFake) {
    out.push_back({t.name, std::vector<uint8_t>(q->fake.begin(), q->fake.end())});
    return out;
  }
  auto packed =
      spec.format == OutputLayout::kInc
          ? PackInc(*q, LayerName(t.name), spec.compression_dim)
          : PackGptq(*q, LayerName(t.name), GptqPackOptions{(*session)->gptq_format, {}, nullptr});
  EXPECT_TRUE(packed.ok()) << packed.status();
  for (auto& p : *packed) out.push_back({p.name, p.data});
  return out;
}

void ExpectParity(Backend& backend, const SessionSpec& spec, const std::vector<Tensor>& tensors) {
  auto session = backend.OpenSession(spec);
  ASSERT_TRUE(session.ok()) << session.status();
  for (const Tensor& t : tensors) {
    SCOPED_TRACE(t.name);
    MemorySink sink;
    auto got = Quantize(**session, Request(t), &sink);
    ASSERT_TRUE(got.ok()) << got.status();
    bool quantized = false;
    const auto want = CoreOutputs(t, spec, &quantized);
    EXPECT_EQ(got->name, t.name);
    EXPECT_EQ(got->quantized, quantized);
    EXPECT_EQ(got->attempts, 1);
    EXPECT_THAT(got->served_by, HasSubstr("127.0.0.1"));
    ASSERT_EQ(got->outputs.size(), want.size());
    ASSERT_EQ(sink.outputs.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got->outputs[i].name, want[i].first);
      EXPECT_EQ(sink.outputs[i].name, want[i].first);
      EXPECT_TRUE(sink.outputs[i].data == want[i].second) << want[i].first;
    }
  }
  EXPECT_TRUE((*session)->Close().ok());
}

class RemoteBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartServer(TestOptions());
    ClientOptions o;
    o.server = "127.0.0.1:" + std::to_string(server_->port());
    o.chunk_bytes = 1000;  // several chunks per tensor
    auto b = RemoteBackend::Create(o);
    ASSERT_TRUE(b.ok()) << b.status();
    backend_ = std::move(*b);
  }
  std::unique_ptr<server::RtnqServer> server_;
  std::unique_ptr<RemoteBackend> backend_;
};

std::vector<Tensor> Tensors() {
  return {RandomTensor("model.layers.0.q_proj.weight", "F32", {64, 128}, 1),
          RandomTensor("model.layers.0.k_proj.weight", "BF16", {32, 64}, 2),
          RandomTensor("model.layers.1.v_proj.weight", "F16", {16, 256}, 3)};
}

// The C API names output forms for gRPC clients without linking protobuf (OutputFormName); the
// names must be those of the forms the wire mapping chooses, and the mapping must round-trip.
TEST(OutputLayoutWireTest, NamesAndMappingAgree) {
  for (OutputLayout l : kOutputLayouts) {
    SCOPED_TRACE(OutputLayoutName(l));
    EXPECT_EQ(OutputFormName(l), v1::OutputForm_Name(OutputLayoutToProto(l)));
    EXPECT_EQ(OutputLayoutFromProto(OutputLayoutToProto(l)), l);
  }
  EXPECT_EQ(OutputLayoutFromProto(v1::OUTPUT_FORM_CODES), OutputLayout::kFake);
}

TEST_F(RemoteBackendTest, FakeParity) {
  ExpectParity(*backend_, Spec(R"({"bits":4,"group_size":32})", OutputLayout::kFake), Tensors());
}

TEST_F(RemoteBackendTest, IncParity) {
  ExpectParity(*backend_, Spec(R"({"bits":4,"group_size":32})", OutputLayout::kInc), Tensors());
}

TEST_F(RemoteBackendTest, GptqV1Parity) {
  ExpectParity(
      *backend_,
      Spec(R"({"bits":4,"group_size":32,"scheme":"sym"})", OutputLayout::kGptq, GptqFormat::kV1),
      Tensors());
}

TEST_F(RemoteBackendTest, GptqV2Parity) {
  ExpectParity(*backend_,
               Spec(R"({"bits":4,"group_size":32})", OutputLayout::kGptq, GptqFormat::kV2),
               Tensors());
}

TEST_F(RemoteBackendTest, WeightConfigOverrideAndPassthrough) {
  const SessionSpec spec = Spec(
      R"({"bits":4,"group_size":32,"weight_config":{"model.layers.0.q_proj.weight":{"bits":8},)"
      R"("model.layers.1.v_proj.weight":{"dtype":"fp32"}}})");
  ExpectParity(*backend_, spec, Tensors());
  auto session = backend_->OpenSession(spec);
  ASSERT_TRUE(session.ok());
  auto q = Quantize(**session, Request(Tensors()[0]));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->config.bits, 8);
  EXPECT_EQ(q->decided_by, "model.layers.0.q_proj.weight");
  auto p = Quantize(**session, Request(Tensors()[2]));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->quantized);
}

TEST_F(RemoteBackendTest, ConfigErrorAtOpenNamesField) {
  auto s = backend_->OpenSession(Spec(R"({"bits":9})", OutputLayout::kFake));
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bits")));
}

TEST_F(RemoteBackendTest, PerTensorErrorKeepsSessionUsable) {
  auto session = backend_->OpenSession(SessionSpec{});
  ASSERT_TRUE(session.ok()) << session.status();
  Tensor bad = RandomTensor("bad.weight", "F32", {8, 32}, 4);
  TensorRequest req = Request(bad);
  req.tensor.shape = {8, 64};  // byte count does not match the shape
  auto r = Quantize(**session, req);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("bad.weight"));
  Tensor nan = RandomTensor("nan.weight", "F32", {8, 32}, 5);
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  memcpy(nan.data.data() + 12, &qnan, 4);
  auto n = Quantize(**session, Request(nan));
  EXPECT_THAT(n.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nan.weight")));
  auto ok = Quantize(**session, Request(Tensors()[0]));
  EXPECT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE((*session)->Close().ok());
}

TEST_F(RemoteBackendTest, DestroyWithoutCloseIsSafe) {
  auto session = backend_->OpenSession(SessionSpec{});
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE(Quantize(**session, Request(Tensors()[0])).ok());
  session->reset();
}

ClientOptions TwoReplicas(const server::RtnqServer& a, const server::RtnqServer& b) {
  ClientOptions o;
  o.server = "localhost:" + std::to_string(a.port()) + ",127.0.0.1:" + std::to_string(b.port());
  o.initial_backoff_seconds = 0.01;
  return o;
}

const SessionSpec kFakeSpec = Spec(R"({"bits":4,"group_size":32})");

// Quantizes `t` on `session` and checks the outputs are `t` quantized under kFakeSpec, byte for
// byte.
absl::StatusOr<TensorResult> QuantizeAndCheck(Session& session, const Tensor& t) {
  MemorySink sink;
  absl::StatusOr<TensorResult> r = Quantize(session, Request(t), &sink);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return r;
  bool quantized = false;
  const auto want = CoreOutputs(t, kFakeSpec, &quantized);
  EXPECT_EQ(r->outputs.size(), 1u);
  EXPECT_EQ(sink.outputs.size(), 1u);
  if (sink.outputs.size() == 1) {
    EXPECT_TRUE(sink.outputs[0].data == want[0].second);
  }
  return r;
}

// Streams rotate (here after every 2 tensors), and round_robin places each new stream, so even
// one session spreads over every replica.
TEST(RemoteReplicas, RoundRobinSpreadsTheTensorsOfOneSession) {
  auto a = StartServer(TestOptions());
  auto b = StartServer(TestOptions());
  ClientOptions o = TwoReplicas(*a, *b);
  o.stream_max_tensors = 2;
  auto backend = RemoteBackend::Create(o);
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto s = (*backend)->OpenSession(kFakeSpec);
  ASSERT_TRUE(s.ok()) << s.status();
  const std::vector<Tensor> tensors = Tensors();
  std::set<std::string> peers;
  for (int i = 0; i < 40 && peers.size() < 2; ++i) {
    const Tensor& t = tensors[i % tensors.size()];
    auto r = QuantizeAndCheck(**s, t);
    if (r.ok()) peers.insert(r->served_by);
  }
  EXPECT_EQ(peers.size(), 2u);
  EXPECT_TRUE((*s)->Close().ok());
}

// The replica that served a session goes away: the session's next tensors go to the other one.
// The replica that served a session goes away between tensors: the session's next tensors go to
// the other one. The stream it had kept open is dead; replacing it does not use up an attempt,
// so even --max-attempts 1 carries on (as it did when every tensor had its own stream).
TEST(RemoteReplicas, FailoverWhenAReplicaStops) {
  for (int max_attempts : {1, 4}) {
    SCOPED_TRACE(max_attempts);
    auto a = StartServer(TestOptions());
    auto b = StartServer(TestOptions());
    ClientOptions o = TwoReplicas(*a, *b);
    o.max_attempts = max_attempts;
    auto backend = RemoteBackend::Create(o);
    ASSERT_TRUE(backend.ok()) << backend.status();
    auto s = (*backend)->OpenSession(kFakeSpec);
    ASSERT_TRUE(s.ok());
    auto first = Quantize(**s, Request(Tensors()[0]));
    ASSERT_TRUE(first.ok());
    const bool on_a = first->served_by.find(std::to_string(a->port())) != std::string::npos;
    (on_a ? a : b)->Shutdown(0);
    const std::vector<Tensor> tensors = Tensors();  // the first one last: a new name comes first
    for (const Tensor& t : {tensors[1], tensors[2], tensors[0]}) {
      auto r = QuantizeAndCheck(**s, t);
      if (r.ok()) {
        EXPECT_NE(r->served_by, first->served_by);
      }
    }
    EXPECT_TRUE((*s)->Close().ok());
  }
}

// A transient refusal (RESOURCE_EXHAUSTED from a replica with a small tensor limit) is retried
// on a new stream, which round_robin places on the other replica.
TEST(RemoteReplicas, TransientErrorsAreRetriedOnAnotherReplica) {
  server::ServerOptions small = TestOptions();
  small.max_tensor_bytes = 64;
  auto a = StartServer(small);
  auto b = StartServer(TestOptions());
  auto backend = RemoteBackend::Create(TwoReplicas(*a, *b));
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto s = (*backend)->OpenSession(kFakeSpec);
  ASSERT_TRUE(s.ok());
  const std::vector<Tensor> tensors = Tensors();
  bool retried = false;
  for (int i = 0; i < 40 && !retried; ++i) {
    const Tensor& t = tensors[i % tensors.size()];
    auto r = QuantizeAndCheck(**s, t);
    if (!r.ok()) break;
    EXPECT_THAT(r->served_by, HasSubstr(std::to_string(b->port())));
    retried = r->attempts > 1;
  }
  EXPECT_TRUE(retried);
  EXPECT_TRUE((*s)->Close().ok());
}

TEST(RemoteReplicas, AllDownIsAnErrorNotAHang) {
  for (double deadline : {0.0, 0.5}) {
    SCOPED_TRACE(deadline);
    auto server = StartServer(TestOptions());
    ClientOptions o;
    o.server = "127.0.0.1:" + std::to_string(server->port());
    o.initial_backoff_seconds = 0.01;
    o.max_attempts = 2;
    o.deadline_seconds = deadline;
    auto backend = RemoteBackend::Create(o);
    ASSERT_TRUE(backend.ok());
    auto s = (*backend)->OpenSession(SessionSpec{});
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(Quantize(**s, Request(Tensors()[0])).ok());
    server->Shutdown(0);
    auto r = Quantize(**s, Request(Tensors()[1]));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().code() == absl::StatusCode::kUnavailable ||
                r.status().code() == absl::StatusCode::kDeadlineExceeded)
        << r.status();
  }
}

TEST(RemoteAuth, TokenRequired) {
  server::testing::TempDir dir;
  std::ofstream(dir.File("token")) << "s3cret\n";
  std::ofstream(dir.File("wrong")) << "nope\n";
  server::ServerOptions so = TestOptions();
  so.auth_token_file = dir.File("token");
  auto server = StartServer(so);
  ClientOptions o;
  o.server = "127.0.0.1:" + std::to_string(server->port());
  o.token_file = dir.File("token");
  auto good = RemoteBackend::Create(o);
  ASSERT_TRUE(good.ok());
  auto s = (*good)->OpenSession(SessionSpec{});
  ASSERT_TRUE(s.ok()) << s.status();
  auto r = Quantize(**s, Request(Tensors()[0]));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempts, 1);
  o.token_file = dir.File("wrong");
  auto bad = RemoteBackend::Create(o);
  ASSERT_TRUE(bad.ok());
  EXPECT_THAT((*bad)->OpenSession(SessionSpec{}).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

}  // namespace
}  // namespace rtnq::client
