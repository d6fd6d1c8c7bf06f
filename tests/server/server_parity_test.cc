// Results through the service are byte-identical to the core's, for every output form over a
// spread of configs; weight_config resolution over the wire; GetServerInfo.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/config/weight_config.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/io/crc32c.h"
#include "core/layout/gptq.h"
#include "core/layout/output_plan.h"
#include "core/quantize.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/session.h"
#include "tests/server/harness.h"

namespace rtnq::server::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The core's answer for one tensor, in the service's output order.
struct Expected {
  bool error = false;
  absl::Status status;
  bool quantized = false;
  std::vector<std::string> names;
  std::vector<std::string> outputs;
  TensorMetrics metrics;
};

std::string Bytes(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

Expected CoreResult(const Tensor& t, const ParsedSession& s, const Engine& engine) {
  Expected e;
  const QuantConfig config = s.resolver.Resolve(t.name)->config;
  QuantizeOptions o;
  o.fake_quant = s.output_form == v1::OUTPUT_FORM_FAKE_QUANT && !s.metrics_only;
  o.codes = s.output_form != v1::OUTPUT_FORM_FAKE_QUANT && !s.metrics_only;
  o.quantize_1d = s.quantize_1d;
  o.pass_nonfinite = s.pass_nonfinite;
  const TensorInput in{t.name,
                       *ParseElemType(t.dtype),
                       t.shape,
                       {reinterpret_cast<const uint8_t*>(t.data.data()), t.data.size()}};
  auto fail = [&](const absl::Status& st) {
    e.error = true;
    e.status = st;
    return e;
  };
  auto plan = PlanTensor(in.name, in.dtype, in.shape, config, o);
  if (plan.ok() && plan->quantize && s.output_form == v1::OUTPUT_FORM_PACKED_GPTQ) {
    if (absl::Status st = CheckGptqCompatible(t.name, config, plan->rows, plan->cols); !st.ok()) {
      return fail(st);
    }
  }
  if (plan.ok() && plan->quantize &&
      (s.output_form == v1::OUTPUT_FORM_PACKED_COMPRESSED_TENSORS ||
       s.output_form == v1::OUTPUT_FORM_PACKED_AWQ)) {
    auto specs = PlanQuantizedOutputs(t.name, in.dtype, in.shape, config, LayoutOf(s));
    if (!specs.ok()) return fail(specs.status());
  }
  auto q = QuantizeTensor(in, config, o, engine);
  if (!q.ok()) return fail(q.status());
  e.quantized = q->quantized;
  e.metrics = q->metrics;
  if (s.metrics_only) return e;
  if (!q->quantized) {
    e.names = {t.name};
    e.outputs = {t.data};
    return e;
  }
  const bool asym = config.dtype == QuantDtype::kInt && config.scheme == Scheme::kAsym;
  switch (s.output_form) {
    case v1::OUTPUT_FORM_FAKE_QUANT:
      e.names = {t.name};
      e.outputs = {Bytes(q->fake.data(), q->fake.size())};
      break;
    case v1::OUTPUT_FORM_CODES:
      e.names = {t.name + ".codes", t.name + ".scales"};
      e.outputs = {Bytes(q->codes.data(), q->codes.size()),
                   Bytes(q->scales.data(), q->scales.size() * 4)};
      if (asym) {
        e.names.push_back(t.name + ".zeros");
        e.outputs.push_back(Bytes(q->zeros.data(), q->zeros.size() * 4));
      }
      break;
    default: {
      auto packed = PackToLayout(*q, t.name, LayoutOf(s), engine);
      if (!packed.ok()) return fail(packed.status());
      for (const auto& p : *packed) {
        e.names.push_back(p.name);
        e.outputs.push_back(Bytes(p.data.data(), p.data.size()));
      }
    }
  }
  return e;
}

// Checks every tensor of `result` against the core.
void ExpectMatchesCore(const SessionResult& result, const std::vector<Tensor>& tensors,
                       const v1::SessionConfig& config, const Engine& engine) {
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_EQ(result.order_error, "");
  auto session = SessionFromProto(config);
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE(result.started.has_value());
  ASSERT_TRUE(result.summary.has_value());
  int64_t failed = 0, ok = 0, skipped = 0, bytes_in = 0;
  std::vector<std::string> order;
  for (const Tensor& t : tensors) {
    SCOPED_TRACE(t.name);
    order.push_back(t.name);
    bytes_in += t.data.size();
    const Expected want = CoreResult(t, **session, engine);
    ASSERT_TRUE(result.tensors.count(t.name));
    const TensorResult& got = result.tensors.at(t.name);
    if (want.error) {
      ++failed;
      ASSERT_TRUE(got.error.has_value());
      EXPECT_EQ(got.error->code(), static_cast<int>(want.status.code()));
      const std::string message(want.status.message());
      if (message.find("NaN/Inf") != std::string::npos) {
        // The row-streaming and whole-tensor paths word this one differently (core detail);
        // both name the tensor and the element.
        const std::string element = message.substr(0, message.find(" is "));
        EXPECT_THAT(got.error->message(), HasSubstr(element));
        EXPECT_THAT(got.error->message(), HasSubstr("NaN/Inf"));
      } else {
        EXPECT_EQ(got.error->message(), message);
      }
      continue;
    }
    (want.quantized ? ok : skipped)++;
    ASSERT_FALSE(got.error.has_value()) << got.error->message();
    ASSERT_TRUE(got.header.has_value());
    ASSERT_TRUE(got.metrics.has_value());
    EXPECT_EQ(got.header->quantized(), want.quantized);
    ASSERT_EQ(got.header->outputs_size(), static_cast<int>(want.outputs.size()));
    for (size_t i = 0; i < want.outputs.size(); ++i) {
      EXPECT_EQ(got.header->outputs(i).name(), want.names[i]);
      EXPECT_EQ(got.header->outputs(i).total_bytes(), static_cast<int64_t>(want.outputs[i].size()));
      EXPECT_TRUE(got.outputs[i] == want.outputs[i]) << "output " << want.names[i] << " differs";
    }
    EXPECT_EQ(got.metrics->elements(), want.metrics.elements);
    EXPECT_EQ(got.metrics->groups(), want.metrics.groups);
    EXPECT_DOUBLE_EQ(got.metrics->mse(), want.metrics.mse);
    EXPECT_DOUBLE_EQ(got.metrics->max_abs_error(), want.metrics.max_abs_error);
    EXPECT_EQ(got.metrics->snr_db(), want.metrics.snr_db);
    EXPECT_DOUBLE_EQ(got.metrics->clip_ratio(), want.metrics.clip_ratio);
  }
  EXPECT_EQ(result.order, order);
  EXPECT_EQ(result.summary->tensors_ok(), ok);
  EXPECT_EQ(result.summary->tensors_skipped(), skipped);
  EXPECT_EQ(result.summary->tensors_failed(), failed);
  EXPECT_EQ(result.summary->bytes_in(), bytes_in);
}

// The tensors every config case sends: three 2-D dtypes, a 3-D tensor, a 1-D norm.
std::vector<Tensor> StandardTensors() {
  return {RandomTensor("model.layers.0.self_attn.q_proj.weight", "F32", {64, 128}, 1),
          RandomTensor("model.layers.0.mlp.down_proj.weight", "BF16", {32, 256}, 2),
          RandomTensor("model.layers.0.mlp.up_proj.weight", "F16", {64, 96}, 3),
          RandomTensor("model.layers.0.conv.weight", "F32", {8, 4, 32}, 4),
          RandomTensor("model.norm.weight", "F32", {128}, 5)};
}

struct ConfigCase {
  const char* name;
  v1::QuantConfigPatch patch;
};

v1::QuantConfigPatch Patch(std::function<void(v1::QuantConfigPatch&)> f) {
  v1::QuantConfigPatch p;
  f(p);
  return p;
}

std::vector<ConfigCase> ConfigCases() {
  using P = v1::QuantConfigPatch;
  return {
      {"int4_asym_g32", P()},
      {"int8_sym_row", Patch([](P& p) {
         p.set_bits(8);
         p.set_scheme(v1::SCHEME_SYM);
         p.set_group_size(-1);
       })},
      {"int3_sym_g32", Patch([](P& p) {
         p.set_bits(3);
         p.set_scheme(v1::SCHEME_SYM);
       })},
      {"int2_asym_g16_q09", Patch([](P& p) {
         p.set_bits(2);
         p.set_group_size(16);
         p.set_quantile(0.9);
       })},
      {"int4_sym_full_range", Patch([](P& p) {
         p.set_scheme(v1::SCHEME_SYM);
         p.set_enable_full_range(true);
       })},
      {"nf4_g32", Patch([](P& p) { p.set_dtype(v1::QUANT_DTYPE_NF4); })},
      {"fp4_e2m1_g64", Patch([](P& p) {
         p.set_dtype(v1::QUANT_DTYPE_FP4_E2M1);
         p.set_group_size(64);
       })},
      {"int4_asym_g16_group_dim0", Patch([](P& p) {
         p.set_group_size(16);
         p.set_group_dim(0);
       })},
      {"int4_sym_mse", Patch([](P& p) {
         p.set_scheme(v1::SCHEME_SYM);
         p.set_enable_mse_search(true);
       })},
      {"preset_bnb_nf4", Patch([](P& p) { p.set_preset("BNB_NF4"); })},
      {"preset_q4_k", Patch([](P& p) { p.set_preset("GGML_TYPE_Q4_K"); })},
  };
}

class ParityTest : public ::testing::TestWithParam<v1::OutputForm> {
 protected:
  static void SetUpTestSuite() {
    server_ = StartServer(TestOptions()).release();
    engine_ = Engine::Create(EngineOptions{2, ""})->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete engine_;
  }
  static RtnqServer* server_;
  static Engine* engine_;
};
RtnqServer* ParityTest::server_ = nullptr;
Engine* ParityTest::engine_ = nullptr;

TEST_P(ParityTest, EveryConfigMatchesTheCore) {
  ASSERT_NE(server_, nullptr);
  auto stub = Stub(server_->port());
  size_t chunk = 1000;  // odd sizes cut rows apart; later cases use larger chunks
  for (const ConfigCase& c : ConfigCases()) {
    SCOPED_TRACE(c.name);
    v1::SessionConfig config;
    *config.mutable_default_config() = c.patch;
    config.set_output_form(GetParam());
    std::vector<Tensor> tensors = StandardTensors();
    std::vector<v1::QuantizeRequest> requests{ConfigRequest(config)};
    for (const Tensor& t : tensors) {
      for (auto& r : TensorRequests(t, chunk, ComputeCrc32c(t.data.data(), t.data.size()))) {
        requests.push_back(std::move(r));
      }
    }
    chunk = chunk * 3 + 7;
    ExpectMatchesCore(RunSession(*stub, requests), tensors, config, *engine_);
  }
}

TEST_P(ParityTest, SessionOptionsMatchTheCore) {
  ASSERT_NE(server_, nullptr);
  auto stub = Stub(server_->port());
  Tensor nan = RandomTensor("layers.1.weight", "F32", {32, 64}, 9);
  const float q_nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan.data.data() + 4 * 77, &q_nan, 4);
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    v1::SessionConfig config;
    config.set_output_form(GetParam());
    if (variant == 0) config.set_metrics_only(true);
    if (variant == 1) config.set_quantize_1d(true);
    if (variant == 2) config.set_pass_nonfinite(true);
    config.mutable_default_config()->set_scheme(v1::SCHEME_SYM);
    std::vector<Tensor> tensors = StandardTensors();
    tensors.back().shape = {128};  // the 1-D norm, quantized with quantize_1d
    tensors.push_back(nan);
    std::vector<v1::QuantizeRequest> requests{ConfigRequest(config)};
    for (const Tensor& t : tensors) {
      for (auto& r : TensorRequests(t, 4096)) requests.push_back(std::move(r));
    }
    ExpectMatchesCore(RunSession(*stub, requests), tensors, config, *engine_);
  }
}

TEST_P(ParityTest, IncCompressionDimZeroAndExplicitGptqFormat) {
  ASSERT_NE(server_, nullptr);
  auto stub = Stub(server_->port());
  v1::SessionConfig config;
  config.set_output_form(GetParam());
  config.set_compression_dim(0);
  config.set_gptq_format(v1::GPTQ_FORMAT_V2);
  config.mutable_default_config()->set_scheme(v1::SCHEME_SYM);
  std::vector<Tensor> tensors = StandardTensors();
  std::vector<v1::QuantizeRequest> requests{ConfigRequest(config)};
  for (const Tensor& t : tensors) {
    for (auto& r : TensorRequests(t, 1 << 20)) requests.push_back(std::move(r));
  }
  const SessionResult result = RunSession(*stub, requests);
  ExpectMatchesCore(result, tensors, config, *engine_);
  ASSERT_TRUE(result.started.has_value());
  EXPECT_EQ(result.started->gptq_format(), v1::GPTQ_FORMAT_V2);
}

INSTANTIATE_TEST_SUITE_P(AllForms, ParityTest,
                         ::testing::Values(v1::OUTPUT_FORM_FAKE_QUANT, v1::OUTPUT_FORM_CODES,
                                           v1::OUTPUT_FORM_PACKED_INC, v1::OUTPUT_FORM_PACKED_GPTQ,
                                           v1::OUTPUT_FORM_PACKED_COMPRESSED_TENSORS,
                                           v1::OUTPUT_FORM_PACKED_AWQ),
                         [](const auto& p) { return v1::OutputForm_Name(p.param); });

// ---------------------------------------------------------------------------------------------

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartServer(TestOptions());
    ASSERT_NE(server_, nullptr);
    stub_ = Stub(server_->port());
  }
  std::unique_ptr<RtnqServer> server_;
  std::unique_ptr<v1::Quantizer::Stub> stub_;
};

TEST_F(ServiceTest, WeightConfigResolutionOverTheWire) {
  v1::SessionConfig config;
  config.mutable_default_config()->set_bits(4);
  auto add = [&](const std::string& key, std::function<void(v1::QuantConfigPatch&)> f) {
    v1::WeightConfigEntry* e = config.add_weight_config();
    e->set_key(key);
    f(*e->mutable_patch());
  };
  add("lm_head", [](auto& p) { p.set_dtype(v1::QUANT_DTYPE_FP32); });
  add("*.down_proj", [](auto& p) { p.set_bits(8); });
  add("model.layers.1.mlp.up_proj.weight", [](auto& p) { p.set_group_size(16); });
  add("model.layers.2.mlp.gate_proj", [](auto& p) { p.set_scheme(v1::SCHEME_SYM); });
  std::vector<Tensor> tensors{
      RandomTensor("lm_head.weight", "F32", {32, 64}, 1),
      RandomTensor("model.layers.0.mlp.down_proj.weight", "F32", {32, 64}, 2),
      RandomTensor("model.layers.1.mlp.up_proj.weight", "F32", {32, 64}, 3),
      RandomTensor("model.layers.2.mlp.gate_proj.weight", "F32", {32, 64}, 4),
      RandomTensor("model.layers.2.mlp.other.weight", "F32", {32, 64}, 5)};
  std::vector<v1::QuantizeRequest> requests{ConfigRequest(config)};
  for (const Tensor& t : tensors) {
    for (auto& r : TensorRequests(t)) requests.push_back(std::move(r));
  }
  const SessionResult result = RunSession(*stub_, requests);
  auto engine = Engine::Create(EngineOptions{1, ""});
  ExpectMatchesCore(result, tensors, config, **engine);

  auto header = [&](const std::string& name) { return *result.tensors.at(name).header; };
  EXPECT_FALSE(header("lm_head.weight").quantized());
  EXPECT_EQ(header("lm_head.weight").decided_by(), "lm_head");
  EXPECT_EQ(header("lm_head.weight").match_kind(), "layer");
  EXPECT_EQ(header("lm_head.weight").skip_reason(), "config dtype is fp32");
  EXPECT_EQ(header("model.layers.0.mlp.down_proj.weight").decided_by(), "*.down_proj");
  EXPECT_EQ(header("model.layers.0.mlp.down_proj.weight").match_kind(), "pattern");
  EXPECT_EQ(header("model.layers.0.mlp.down_proj.weight").config().bits(), 8);
  EXPECT_EQ(header("model.layers.1.mlp.up_proj.weight").match_kind(), "tensor");
  EXPECT_EQ(header("model.layers.1.mlp.up_proj.weight").config().group_size(), 16);
  EXPECT_EQ(header("model.layers.2.mlp.gate_proj.weight").match_kind(), "layer");
  EXPECT_EQ(header("model.layers.2.mlp.gate_proj.weight").config().scheme(), v1::SCHEME_SYM);
  EXPECT_EQ(header("model.layers.2.mlp.other.weight").decided_by(), "");
  EXPECT_EQ(header("model.layers.2.mlp.other.weight").match_kind(), "default");
  EXPECT_EQ(result.summary->tensors_skipped(), 1);
  EXPECT_EQ(result.summary->tensors_ok(), 4);
}

TEST_F(ServiceTest, ConfigJsonSessionMatchesTheCore) {
  v1::SessionConfig config;
  config.set_config_json(
      R"({"bits": 8, "scheme": "sym", "group_size": 64,
          "weight_config": {"re:.*\\.q_proj": {"bits": 4, "group_dim": 0}}})");
  config.set_output_form(v1::OUTPUT_FORM_CODES);
  std::vector<Tensor> tensors = StandardTensors();
  std::vector<v1::QuantizeRequest> requests{ConfigRequest(config)};
  for (const Tensor& t : tensors) {
    for (auto& r : TensorRequests(t, 777)) requests.push_back(std::move(r));
  }
  const SessionResult result = RunSession(*stub_, requests);
  auto engine = Engine::Create(EngineOptions{1, ""});
  ExpectMatchesCore(result, tensors, config, **engine);
  const auto& q = *result.tensors.at("model.layers.0.self_attn.q_proj.weight").header;
  EXPECT_EQ(q.decided_by(), "re:.*\\.q_proj");
  EXPECT_EQ(q.config().group_dim(), 0);
  EXPECT_EQ(result.started->default_config().bits(), 8);
}

// Sends `tensors` in one session in chunks of `chunk` bytes; the results must be the core's and
// the server's memory budget must be whole again afterwards.
void ExpectChunkedSessionMatchesCore(v1::Quantizer::Stub& stub, const RtnqServer& server,
                                     v1::OutputForm form, const std::vector<Tensor>& tensors,
                                     size_t chunk) {
  v1::SessionConfig config;
  config.set_output_form(form);
  std::vector<v1::QuantizeRequest> requests{ConfigRequest(config)};
  for (const Tensor& t : tensors) {
    for (auto& r : TensorRequests(t, chunk)) requests.push_back(std::move(r));
  }
  const SessionResult result = RunSession(stub, requests);
  auto engine = Engine::Create(EngineOptions{2, ""});
  ExpectMatchesCore(result, tensors, config, **engine);
  EXPECT_EQ(server.memory().used(), 0);
}

TEST_F(ServiceTest, ALargeRowStreamedTensorMatchesTheCore) {
  // 8 MiB of F32 in 1 MiB chunks: rows are quantized while later chunks still arrive.
  ExpectChunkedSessionMatchesCore(*stub_, *server_, v1::OUTPUT_FORM_FAKE_QUANT,
                                  {RandomTensor("big.weight", "F32", {512, 4096}, 11)}, 1 << 20);
}

TEST_F(ServiceTest, RowsSpanningSeveralChunksMatchTheCore) {
  // Rows of 4000 bytes in chunks of 1500: every row is assembled from two or three chunks, and
  // chunks hold a row's end and the next row's start.
  for (v1::OutputForm form : {v1::OUTPUT_FORM_FAKE_QUANT, v1::OUTPUT_FORM_PACKED_INC}) {
    ExpectChunkedSessionMatchesCore(*stub_, *server_, form,
                                    {RandomTensor("wide.weight", "F32", {9, 1000}, 12),
                                     RandomTensor("next.weight", "F32", {5, 1000}, 13)},
                                    1500);
  }
}

TEST_F(ServiceTest, GetServerInfo) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ServerInfo info;
  ASSERT_TRUE(stub_->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_FALSE(info.version().empty());
  EXPECT_THAT(info.input_dtypes(), ElementsAre("F32", "F16", "BF16"));
  EXPECT_THAT(info.quant_dtypes(), ::testing::Contains("nf4"));
  EXPECT_THAT(info.int_bits(), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_THAT(info.output_forms(),
              ElementsAre("OUTPUT_FORM_FAKE_QUANT", "OUTPUT_FORM_CODES", "OUTPUT_FORM_PACKED_INC",
                          "OUTPUT_FORM_PACKED_GPTQ", "OUTPUT_FORM_PACKED_COMPRESSED_TENSORS",
                          "OUTPUT_FORM_PACKED_AWQ"));
  EXPECT_THAT(info.presets(), ElementsAre("BNB_NF4", "GGML_TYPE_Q4_K"));
  EXPECT_EQ(info.max_tensor_bytes(), TestOptions().max_tensor_bytes);
  EXPECT_EQ(info.max_message_bytes(), TestOptions().max_message_bytes);
  EXPECT_EQ(info.max_streams(), TestOptions().max_streams);
  EXPECT_THAT(info.kernel(), ::testing::AnyOf("reference", "avx2", "avx512"));
  EXPECT_GE(info.threads(), 1);
}

}  // namespace
}  // namespace rtnq::server::testing
