// The client at the sizes and limits users hit, against real in-process servers on 127.0.0.1
// with small budgets (1 MiB per stream, 4 MiB in all): tensors 4x a stream's budget, larger than
// the global budget, with rows wider than a stream's budget, in every output form and with the
// configs the server buffers whole, give byte-identical checkpoints to local mode with 1 and 4
// streams; 2,000 small tensors with a 1,000-entry weight_config compile the config once; a
// tensor whose stream breaks mid-answer is retried from the start.
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/local_backend.h"
#include "client/memory_sink.h"
#include "client/quantize_run.h"
#include "client/remote/remote_backend.h"
#include "core/io/file_io.h"
#include "core/io/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/session_cache.h"
#include "tests/client/tensor_request.h"
#include "tests/server/harness.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using server::testing::RandomTensor;
using server::testing::StartServer;
using server::testing::TempDir;
using server::testing::Tensor;
using ::testing::HasSubstr;
using testing::Request;

constexpr int64_t kStreamBudget = 1 << 20;
constexpr int64_t kGlobalBudget = 4 << 20;

// A server with budgets small enough that the tensors below cross them.
server::ServerOptions SmallBudgets() {
  server::ServerOptions o = server::testing::TestOptions();
  o.stream_budget_bytes = kStreamBudget;
  o.memory_budget_bytes = kGlobalBudget;
  o.output_chunk_bytes = 256 << 10;
  return o;
}

// A hang becomes a DEADLINE_EXCEEDED naming the tensor rather than a test timeout.
ClientOptions Client(const server::RtnqServer& s) {
  ClientOptions o;
  o.server = "127.0.0.1:" + std::to_string(s.port());
  o.deadline_seconds = 120;
  o.initial_backoff_seconds = 0.01;
  return o;
}

// Writes `tensors` into a safetensors file.
void WriteCheckpoint(const std::string& path, const std::vector<Tensor>& tensors) {
  std::vector<TensorSpec> specs;
  for (const Tensor& t : tensors) specs.push_back({t.name, *ParseElemType(t.dtype), t.shape});
  absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, specs);
  ASSERT_THAT(w, IsOk());
  for (const Tensor& t : tensors) {
    ASSERT_THAT(
        w->WriteTensor(t.name, {reinterpret_cast<const uint8_t*>(t.data.data()), t.data.size()}),
        IsOk());
  }
  ASSERT_THAT(w->Finish(), IsOk());
}

// The tensors that cross the limits, plus small ones around them.
std::vector<Tensor> LargeTensors() {
  return {
      // 4 MiB: 4x a stream's budget, at the global budget.
      RandomTensor("model.layers.0.self_attn.q_proj.weight", "F32", {1024, 1024}, 1),
      // 10 MiB: 2.5x the global budget.
      RandomTensor("model.layers.0.mlp.up_proj.weight", "F32", {2560, 1024}, 2),
      // Rows of 1.125 MiB: wider than a stream's budget (9 MiB in all).
      RandomTensor("model.layers.0.mlp.down_proj.weight", "F32", {8, 294912}, 3),
      // Just below and at a stream's budget.
      RandomTensor("model.layers.0.self_attn.k_proj.weight", "BF16", {504, 1024}, 4),
      RandomTensor("model.layers.0.self_attn.v_proj.weight", "BF16", {512, 1024}, 5),
      RandomTensor("model.layers.0.self_attn.o_proj.weight", "BF16", {64, 256}, 6),
  };
}

std::string Quiet(const QuantizeRunOptions& o, Backend& backend, absl::Status* status) {
  std::ostringstream out;
  Progress progress(ProgressMode::kQuiet, out);
  absl::StatusOr<QuantizeOutcome> r = RunQuantize(o, backend, progress);
  *status = r.status();
  return r.ok() ? *ReadFileToString(o.output) : "";
}

struct FormatCase {
  const char* name;
  OutputLayout format;
  const char* config;
};

// Quantizes the tensors locally and through a server with small budgets, with 1 and 4 streams;
// the three files must be byte-identical. The row-streamed cases cover every output form the CLI
// writes; the others are the configs the server holds whole (MSE search, double quantization,
// group_dim 0), whose tensors larger than a stream's and the global budget are granted alone
// and complete, never hang.
class LargeTensorTest : public ::testing::TestWithParam<FormatCase> {};

TEST_P(LargeTensorTest, MatchesLocalWithOneAndFourStreams) {
  const FormatCase& c = GetParam();
  TempDir dir;
  WriteCheckpoint(dir.File("in.safetensors"), LargeTensors());
  auto server = StartServer(SmallBudgets());
  ASSERT_NE(server, nullptr);
  auto remote = *RemoteBackend::Create(Client(*server));
  auto local = *LocalBackend::Create({2, ""});
  QuantizeRunOptions o;
  o.input = dir.File("in.safetensors");
  o.format = c.format;
  o.config_json = c.config;
  o.output = dir.File("local.safetensors");
  absl::Status st;
  const std::string want = Quiet(o, *local, &st);
  ASSERT_THAT(st, IsOk());
  for (int streams : {1, 4}) {
    SCOPED_TRACE(streams);
    o.streams = streams;
    o.output = dir.File(absl::StrCat("remote-", streams, ".safetensors"));
    const std::string got = Quiet(o, *remote, &st);
    ASSERT_THAT(st, IsOk());
    EXPECT_TRUE(got == want);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, LargeTensorTest,
    ::testing::Values(
        FormatCase{"fake", OutputLayout::kFake, R"({"bits": 4, "group_size": 32})"},
        FormatCase{"inc", OutputLayout::kInc, R"({"bits": 4, "group_size": 64})"},
        FormatCase{"gptq_v1", OutputLayout::kGptq,
                   R"({"bits": 4, "group_size": 128, "scheme": "sym"})"},
        FormatCase{"gptq_v2", OutputLayout::kGptq, R"({"bits": 8, "group_size": 128})"},
        FormatCase{"mse_search", OutputLayout::kFake, R"({"bits": 4, "enable_mse_search": true})"},
        FormatCase{"double_quant", OutputLayout::kInc,
                   R"({"bits": 4, "double_quant_dtype": "int", "double_quant_bits": 8})"},
        FormatCase{"group_dim_0", OutputLayout::kFake, R"({"bits": 4, "group_dim": 0})"}),
    [](const ::testing::TestParamInfo<FormatCase>& p) { return p.param.name; });

// A directory of 2,000 small tensors and a weight_config with an entry for half of them: the
// server compiles the config once however many streams the run opens and rotates, and the
// checkpoint matches local mode's.
TEST(ManySmallTensorsTest, ConfigIsCompiledOncePerRunNotPerTensor) {
  TempDir dir;
  constexpr int kTensors = 2000;
  constexpr int kEntries = 1000;
  std::vector<Tensor> tensors;
  for (int i = 0; i < kTensors; ++i) {
    tensors.push_back(RandomTensor(absl::StrCat("model.layers.", i, ".mlp.up_proj.weight"), "BF16",
                                   {8, 64}, static_cast<uint32_t>(i)));
  }
  WriteCheckpoint(dir.File("in.safetensors"), tensors);
  std::string config = R"({"bits": 4, "group_size": 32, "weight_config": {)";
  for (int i = 0; i < kEntries; ++i) {
    absl::StrAppend(&config, i > 0 ? ", " : "", R"("model.layers.)", 2 * i,
                    R"(.mlp.up_proj": {"bits": 8, "scheme": "sym"})");
  }
  config += "}}";

  auto server = StartServer(SmallBudgets());
  ASSERT_NE(server, nullptr);
  ClientOptions co = Client(*server);
  co.stream_max_seconds = 0;  // rotate by count only, so the count of streams is known
  auto remote = *RemoteBackend::Create(co);
  auto local = *LocalBackend::Create({2, ""});
  QuantizeRunOptions o;
  o.input = dir.File("in.safetensors");
  o.config_json = config;
  o.streams = 4;
  o.output = dir.File("local.safetensors");
  absl::Status st;
  const std::string want = Quiet(o, *local, &st);
  ASSERT_THAT(st, IsOk());
  o.output = dir.File("remote.safetensors");
  EXPECT_TRUE(Quiet(o, *remote, &st) == want);
  ASSERT_THAT(st, IsOk());

  // One compilation for the run: the config is not re-parsed per stream, let alone per tensor.
  EXPECT_EQ(server->session_cache().compilations(), 1);
  // Streams carry 1, 2, 4, ... then stream_max_tensors (64) tensors each: each of the 4
  // sessions opens at most 7 streams for its first 127 tensors and one per 64 after them.
  const double streams =
      server::testing::MetricValue(server->metrics().Text(), "rtnq_stream_duration_seconds_count");
  EXPECT_GE(streams, kTensors / co.stream_max_tensors);
  EXPECT_LE(streams, kTensors / co.stream_max_tensors + 8 * o.streams);
  EXPECT_EQ(server->session_cache().hits(), static_cast<int64_t>(streams) - 1);
}

// Records what a session did to it, and runs `on_first_write` at the first output bytes.
class RecordingSink : public MemorySink {
 public:
  absl::Status Begin(const std::vector<TensorSpec>& specs) override {
    events += "B";
    return MemorySink::Begin(specs);
  }
  absl::Status Write(size_t index, uint64_t offset, absl::Span<const uint8_t> data) override {
    if (events.empty() || events.back() != 'W') events += "W";
    if (on_first_write) std::exchange(on_first_write, nullptr)();
    return MemorySink::Write(index, offset, data);
  }
  void Discard() override {
    events += "D";
    MemorySink::Discard();
  }
  std::string events;
  std::function<void()> on_first_write;
};

// The replica answering a large tensor goes away after the first output bytes arrived: the
// partial output is discarded and the tensor sent again, whole, to the other replica.
TEST(MidAnswerTest, RetryStartsOverOnAnotherReplica) {
  auto a = StartServer(SmallBudgets());
  auto b = StartServer(SmallBudgets());
  ASSERT_TRUE(a != nullptr && b != nullptr);
  ClientOptions co = Client(*a);
  co.server = absl::StrCat("127.0.0.1:", a->port(), ",127.0.0.1:", b->port());
  auto backend = *RemoteBackend::Create(co);
  const SessionSpec spec{R"({"bits": 4})", OutputLayout::kFake, GptqFormat::kV1, 1, std::nullopt};
  auto session = backend->OpenSession(spec);
  ASSERT_THAT(session, IsOk());
  const Tensor t = RandomTensor("big.weight", "F32", {2560, 1024}, 9);

  MemorySink clean;
  auto local = *LocalBackend::Create({2, ""});
  ASSERT_THAT((*local->OpenSession(spec))->Quantize(Request(t), clean), IsOk());

  RecordingSink sink;
  std::thread stopper;
  sink.on_first_write = [&] {
    server::RtnqServer* serving = a->active_streams() > 0 ? a.get() : b.get();
    stopper = std::thread([serving] { serving->Shutdown(0); });
  };
  absl::StatusOr<TensorResult> r = (*session)->Quantize(Request(t), sink);
  stopper.join();
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->attempts, 2);
  EXPECT_EQ(sink.events, "BWDBW");
  ASSERT_EQ(sink.outputs.size(), 1u);
  EXPECT_TRUE(sink.outputs[0].data == clean.outputs[0].data);
  EXPECT_THAT((*session)->Close(), IsOk());
}

// A TensorError after part of the output arrived (the CRC is checked at the tensor's end) is
// final: the partial output is discarded and the session carries on.
TEST(MidAnswerTest, TensorErrorAfterPartialOutputIsDiscarded) {
  auto server = StartServer(SmallBudgets());
  ASSERT_NE(server, nullptr);
  auto backend = *RemoteBackend::Create(Client(*server));
  auto session = backend->OpenSession(
      SessionSpec{R"({"bits": 4})", OutputLayout::kFake, GptqFormat::kV1, 1, std::nullopt});
  ASSERT_THAT(session, IsOk());
  const Tensor t = RandomTensor("big.weight", "F32", {2560, 1024}, 9);
  TensorRequest req = Request(t);
  req.crc32c = 12345;
  RecordingSink sink;
  EXPECT_THAT((*session)->Quantize(req, sink),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("big.weight")));
  EXPECT_EQ(sink.events, "BWD");
  EXPECT_TRUE(sink.outputs.empty());
  const Tensor small = RandomTensor("small.weight", "F32", {8, 64}, 1);
  MemorySink ok;
  EXPECT_THAT((*session)->Quantize(Request(small), ok), IsOk());
  EXPECT_THAT((*session)->Close(), IsOk());
}

}  // namespace
}  // namespace rtnq::client
