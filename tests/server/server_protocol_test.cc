// A catalogue of malformed streams: each gets its documented status and message, while another
// stream on the same server keeps working. Per-tensor problems are answered in-band.
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/io/crc32c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/harness.h"

namespace rtnq::server::testing {
namespace {

using ::testing::HasSubstr;
using Requests = std::vector<v1::QuantizeRequest>;

constexpr int64_t kMaxMessage = 1 << 20;
constexpr int64_t kMaxTensor = 4 << 20;

ServerOptions ProtocolOptions() {
  ServerOptions o = TestOptions();
  o.max_message_bytes = kMaxMessage + 1024;  // a 1 MiB chunk plus the message's framing
  o.max_tensor_bytes = kMaxTensor;
  return o;
}

v1::SessionConfig DefaultConfig() { return v1::SessionConfig(); }

Requests Concat(std::initializer_list<Requests> parts) {
  Requests out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Requests Cfg(const v1::SessionConfig& c = DefaultConfig()) { return {ConfigRequest(c)}; }

Requests Good(const std::string& name, uint32_t seed = 1) {
  return TensorRequests(RandomTensor(name, "F32", {8, 64}, seed), 1000);
}

// Every stream-ending case runs while a bystander stream stays open on the same server; after
// the case, the bystander quantizes one more tensor and at the end closes cleanly.
class ProtocolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = StartServer(ProtocolOptions()).release(); }
  static void TearDownTestSuite() { delete server_; }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    stub_ = Stub(server_->port());
    bystander_ = std::make_unique<InteractiveSession>(*stub_, DefaultConfig());
    ASSERT_TRUE(bystander_->ok());
  }
  void TearDown() override {
    const TensorResult r =
        bystander_->Send(RandomTensor("bystander.weight", "F32", {16, 64}, 7), 333);
    EXPECT_TRUE(r.metrics.has_value()) << "the bystander stream stopped working";
    const SessionResult s = bystander_->Close();
    EXPECT_TRUE(s.status.ok()) << s.status.error_message();
    ASSERT_TRUE(s.summary.has_value());
    EXPECT_EQ(s.summary->tensors_ok(), 1);
  }

  void ExpectEnds(const Requests& requests, grpc::StatusCode code, const std::string& substring) {
    const SessionResult r = RunSession(*stub_, requests);
    EXPECT_EQ(r.status.error_code(), code) << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr(substring));
    EXPECT_FALSE(r.summary.has_value());
  }

  static RtnqServer* server_;
  std::unique_ptr<v1::Quantizer::Stub> stub_;
  std::unique_ptr<InteractiveSession> bystander_;
};
RtnqServer* ProtocolTest::server_ = nullptr;

TEST_F(ProtocolTest, ChunkBeforeHeader) {
  ExpectEnds(Concat({Cfg(), {ChunkRequest("abcd")}}), grpc::StatusCode::FAILED_PRECONDITION,
             "without an open tensor");
}

TEST_F(ProtocolTest, ConfigTwice) {
  ExpectEnds(Concat({Cfg(), Good("a.weight"), Cfg()}), grpc::StatusCode::FAILED_PRECONDITION,
             "session config sent twice");
}

TEST_F(ProtocolTest, MissingConfigHeaderFirst) {
  ExpectEnds(Good("a.weight"), grpc::StatusCode::FAILED_PRECONDITION, "before the session config");
}

TEST_F(ProtocolTest, MissingConfigChunkFirst) {
  ExpectEnds({ChunkRequest("abcd")}, grpc::StatusCode::FAILED_PRECONDITION,
             "before the session config");
}

TEST_F(ProtocolTest, ClosedWithoutAnyMessage) {
  ExpectEnds({}, grpc::StatusCode::FAILED_PRECONDITION, "closed before its session config");
}

TEST_F(ProtocolTest, EmptyRequest) {
  ExpectEnds(Concat({Cfg(), {v1::QuantizeRequest()}}), grpc::StatusCode::INVALID_ARGUMENT,
             "empty QuantizeRequest");
}

TEST_F(ProtocolTest, DataAfterTheEnd) {
  ExpectEnds(Concat({Cfg(), Good("a.weight"), {ChunkRequest("x")}}),
             grpc::StatusCode::FAILED_PRECONDITION, "data after a tensor's total_bytes");
}

TEST_F(ProtocolTest, ChunkLargerThanTheRest) {
  // 8 x 64 F32 = 2048 bytes; the second chunk overruns by one byte.
  ExpectEnds(Concat({Cfg(),
                     {HeaderRequest("a.weight", "F32", {8, 64}, 2048),
                      ChunkRequest(std::string(2000, '\0')), ChunkRequest(std::string(49, '\0'))}}),
             grpc::StatusCode::INVALID_ARGUMENT,
             "tensor \"a.weight\": chunk of 49 bytes exceeds the 48 bytes remaining");
}

TEST_F(ProtocolTest, DuplicateTensorName) {
  ExpectEnds(Concat({Cfg(), Good("a.weight"), Good("b.weight"), Good("a.weight")}),
             grpc::StatusCode::INVALID_ARGUMENT, "duplicate tensor name \"a.weight\"");
}

TEST_F(ProtocolTest, HeaderWhileATensorIsIncomplete) {
  ExpectEnds(Concat({Cfg(),
                     {HeaderRequest("a.weight", "F32", {8, 64}, 2048),
                      ChunkRequest(std::string(100, '\0'))},
                     Good("b.weight")}),
             grpc::StatusCode::FAILED_PRECONDITION,
             "tensor header \"b.weight\" while tensor \"a.weight\" is incomplete (100 of 2048");
}

TEST_F(ProtocolTest, ClosedMidTensor) {
  ExpectEnds(Concat({Cfg(),
                     {HeaderRequest("a.weight", "F32", {8, 64}, 2048),
                      ChunkRequest(std::string(100, '\0'))}}),
             grpc::StatusCode::INVALID_ARGUMENT,
             "closed with tensor \"a.weight\" incomplete: 100 of 2048 bytes");
}

TEST_F(ProtocolTest, NegativeTotalBytes) {
  ExpectEnds(Concat({Cfg(), {HeaderRequest("a.weight", "F32", {8, 64}, -5)}}),
             grpc::StatusCode::INVALID_ARGUMENT, "total_bytes -5 is negative");
}

TEST_F(ProtocolTest, TensorOverMaxTensorBytesIsRefusedBeforeItsData) {
  // Only the header is sent: the refusal cannot depend on reading data.
  ExpectEnds(Concat({Cfg(), {HeaderRequest("huge.weight", "F32", {1024, 1025}, 4 * 1024 * 1025)}}),
             grpc::StatusCode::RESOURCE_EXHAUSTED, "exceeds the server's max_tensor_bytes");
}

TEST_F(ProtocolTest, ChunkOverTheMessageLimit) {
  const SessionResult r =
      RunSession(*stub_, Concat({Cfg(),
                                 {HeaderRequest("a.weight", "F32", {1024, 512}, 2 << 20),
                                  ChunkRequest(std::string(kMaxMessage + 4096, '\0'))}}));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << r.status.error_message();
}

struct BadConfig {
  const char* name;
  std::function<void(v1::SessionConfig&)> mutate;
  const char* message;
};

TEST_F(ProtocolTest, EachBadConfigValue) {
  const std::vector<BadConfig> cases = {
      {"bits 9", [](auto& c) { c.mutable_default_config()->set_bits(9); }, "bits"},
      {"bits 0", [](auto& c) { c.mutable_default_config()->set_bits(0); }, "bits"},
      {"nf4 bits 3",
       [](auto& c) {
         c.mutable_default_config()->set_dtype(v1::QUANT_DTYPE_NF4);
         c.mutable_default_config()->set_bits(3);
       },
       "bits"},
      {"group_size 0", [](auto& c) { c.mutable_default_config()->set_group_size(0); },
       "group_size"},
      {"group_size -2", [](auto& c) { c.mutable_default_config()->set_group_size(-2); },
       "group_size"},
      {"quantile 0", [](auto& c) { c.mutable_default_config()->set_quantile(0); }, "quantile"},
      {"quantile 1.5", [](auto& c) { c.mutable_default_config()->set_quantile(1.5); }, "quantile"},
      {"quantile NaN",
       [](auto& c) {
         c.mutable_default_config()->set_quantile(std::numeric_limits<double>::quiet_NaN());
       },
       "quantile"},
      {"group_dim 2", [](auto& c) { c.mutable_default_config()->set_group_dim(2); }, "group_dim"},
      {"dtype unspecified",
       [](auto& c) { c.mutable_default_config()->set_dtype(v1::QUANT_DTYPE_UNSPECIFIED); },
       "default_config.dtype: QUANT_DTYPE_UNSPECIFIED"},
      {"dtype 42",
       [](auto& c) { c.mutable_default_config()->set_dtype(static_cast<v1::QuantDtype>(42)); },
       "default_config.dtype: 42"},
      {"scheme 7",
       [](auto& c) { c.mutable_default_config()->set_scheme(static_cast<v1::Scheme>(7)); },
       "default_config.scheme: 7"},
      {"double_quant_dtype nf4",
       [](auto& c) { c.mutable_default_config()->set_double_quant_dtype(v1::QUANT_DTYPE_NF4); },
       "double_quant_dtype"},
      {"double_quant_bits 9",
       [](auto& c) {
         c.mutable_default_config()->set_double_quant_dtype(v1::QUANT_DTYPE_INT);
         c.mutable_default_config()->set_double_quant_bits(9);
       },
       "double_quant_bits"},
      {"double_quant_group_size 0",
       [](auto& c) {
         c.mutable_default_config()->set_double_quant_dtype(v1::QUANT_DTYPE_INT);
         c.mutable_default_config()->set_double_quant_group_size(0);
       },
       "double_quant_group_size"},
      {"1-bit sym full range",
       [](auto& c) {
         c.mutable_default_config()->set_bits(1);
         c.mutable_default_config()->set_scheme(v1::SCHEME_SYM);
         c.mutable_default_config()->set_enable_full_range(true);
       },
       "full"},
      {"unknown preset", [](auto& c) { c.mutable_default_config()->set_preset("Q8_0"); },
       "default_config.preset: \"Q8_0\" is not a preset"},
      {"weight_config bad bits",
       [](auto& c) {
         auto* e = c.add_weight_config();
         e->set_key("lm_head");
         e->mutable_patch()->set_bits(12);
       },
       "weight_config[\"lm_head\"]"},
      {"weight_config empty key",
       [](auto& c) { c.add_weight_config()->mutable_patch()->set_bits(8); }, "weight_config"},
      {"weight_config duplicate key",
       [](auto& c) {
         c.add_weight_config()->set_key("a");
         c.add_weight_config()->set_key("a");
       },
       "weight_config"},
      {"weight_config bad regex", [](auto& c) { c.add_weight_config()->set_key("re:(["); },
       "weight_config[\"re:([\"]"},
      {"config_json invalid", [](auto& c) { c.set_config_json("{\"bits\": "); }, "config"},
      {"config_json unknown key", [](auto& c) { c.set_config_json(R"({"nbits": 4})"); }, "nbits"},
      {"config_json and fields",
       [](auto& c) {
         c.set_config_json(R"({"bits": 4})");
         c.mutable_default_config()->set_bits(8);
       },
       "config_json and default_config/weight_config are alternatives"},
      {"output_form 9", [](auto& c) { c.set_output_form(static_cast<v1::OutputForm>(9)); },
       "output_form: 9"},
      {"gptq_format 5", [](auto& c) { c.set_gptq_format(static_cast<v1::GptqFormat>(5)); },
       "gptq_format: 5"},
      {"compression_dim 3", [](auto& c) { c.set_compression_dim(3); }, "compression_dim: 3"},
  };
  for (const BadConfig& bc : cases) {
    SCOPED_TRACE(bc.name);
    v1::SessionConfig config;
    bc.mutate(config);
    ExpectEnds(Concat({Cfg(config), Good("a.weight")}), grpc::StatusCode::INVALID_ARGUMENT,
               bc.message);
  }
}

struct BadTensor {
  const char* name;
  Requests requests;
  grpc::StatusCode code;
  const char* message;
};

TEST_F(ProtocolTest, PerTensorProblemsAreAnsweredInBandAndTheStreamGoesOn) {
  Tensor nan = RandomTensor("nan.weight", "F32", {8, 64}, 3);
  const float inf = std::numeric_limits<float>::infinity();
  std::memcpy(nan.data.data() + 4 * 130, &inf, 4);
  Tensor nan_buffered = nan;
  nan_buffered.name = "nan_buffered.weight";
  const Tensor ok = RandomTensor("ok.weight", "F32", {8, 64}, 4);
  const uint32_t good_crc = ComputeCrc32c(ok.data.data(), ok.data.size());
  Tensor crc_bad = ok;
  crc_bad.name = "crc.weight";
  Tensor gptq = RandomTensor("gptq.weight", "F32", {8, 64}, 5);
  const std::vector<BadTensor> cases = {
      {"unknown dtype",
       {HeaderRequest("dtype.weight", "F33", {8, 64}, 2048), ChunkRequest(std::string(2048, 'x'))},
       grpc::StatusCode::INVALID_ARGUMENT,
       "F33"},
      {"bytes not matching the shape",
       {HeaderRequest("bytes.weight", "F32", {8, 64}, 2000), ChunkRequest(std::string(2000, 'x'))},
       grpc::StatusCode::INVALID_ARGUMENT,
       "shape [8, 64] with dtype F32 needs 2048 bytes, but total_bytes is 2000"},
      {"element count overflow",
       {HeaderRequest("overflow.weight", "F32", {int64_t{1} << 40, int64_t{1} << 40}, 0)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "overflows"},
      {"byte count overflow",
       {HeaderRequest("overflow2.weight", "F32", {int64_t{1} << 31, int64_t{1} << 31}, 0)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "overflows"},
      {"negative dimension",
       {HeaderRequest("neg.weight", "F32", {-8, 64}, 0)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "negative"},
      {"zero-sized",
       {HeaderRequest("zero.weight", "F32", {0, 64}, 0)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "has no elements"},
      {"integer dtype",
       {HeaderRequest("int.weight", "I32", {8, 64}, 2048), ChunkRequest(std::string(2048, 'x'))},
       grpc::StatusCode::INVALID_ARGUMENT,
       "cannot be quantized"},
      {"empty name", Good(""), grpc::StatusCode::INVALID_ARGUMENT, "name is empty"},
      {"NaN/Inf (row streaming)", TensorRequests(nan, 700), grpc::StatusCode::INVALID_ARGUMENT,
       "element [2, 2]"},
      {"CRC32C mismatch", TensorRequests(crc_bad, 1000, good_crc ^ 1), grpc::StatusCode::DATA_LOSS,
       "CRC32C"},
  };
  Requests requests = Cfg();
  for (const BadTensor& c : cases) {
    requests.insert(requests.end(), c.requests.begin(), c.requests.end());
  }
  requests = Concat({requests, TensorRequests(ok, 1000, good_crc)});
  const SessionResult r = RunSession(*stub_, requests);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.order_error, "");
  for (const BadTensor& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string name = c.requests[0].header().name();
    ASSERT_TRUE(r.tensors.count(name));
    const TensorResult& t = r.tensors.at(name);
    ASSERT_TRUE(t.error.has_value());
    EXPECT_EQ(t.error->code(), static_cast<int>(c.code));
    EXPECT_THAT(t.error->message(), HasSubstr(c.message));
    EXPECT_FALSE(t.metrics.has_value());
  }
  ASSERT_TRUE(r.tensors.at("ok.weight").metrics.has_value());
  ASSERT_TRUE(r.summary.has_value());
  EXPECT_EQ(r.summary->tensors_failed(), static_cast<int64_t>(cases.size()));
  EXPECT_EQ(r.summary->tensors_ok(), 1);
}

TEST_F(ProtocolTest, ConfigsThatCannotApplyAreAnsweredInBand) {
  // GPTQ with group_dim 0 (per tensor, via weight_config), NaN in a whole-tensor path.
  v1::SessionConfig config;
  config.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
  auto* e = config.add_weight_config();
  e->set_key("dim0.weight");
  e->mutable_patch()->set_group_dim(0);
  Tensor nan = RandomTensor("nan.weight", "F32", {8, 64}, 3);
  const float q_nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan.data.data() + 4 * 3, &q_nan, 4);
  auto* m = config.add_weight_config();
  m->set_key("nan.weight");
  m->mutable_patch()->set_enable_mse_search(true);
  const SessionResult r = RunSession(
      *stub_, Concat({Cfg(config), TensorRequests(RandomTensor("dim0.weight", "F32", {8, 64}, 1)),
                      TensorRequests(nan), Good("fine.weight")}));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_TRUE(r.tensors.at("dim0.weight").error.has_value());
  EXPECT_THAT(r.tensors.at("dim0.weight").error->message(), HasSubstr("group_dim"));
  ASSERT_TRUE(r.tensors.at("nan.weight").error.has_value());
  EXPECT_THAT(r.tensors.at("nan.weight").error->message(), HasSubstr("NaN/Inf"));
  EXPECT_TRUE(r.tensors.at("fine.weight").metrics.has_value());
}

TEST(ProtocolLimitsTest, MaxConcurrentStreams) {
  ServerOptions o = TestOptions();
  o.max_streams = 2;
  auto server = StartServer(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->port());
  auto a = std::make_unique<InteractiveSession>(*stub, DefaultConfig());
  InteractiveSession b(*stub, DefaultConfig());
  ASSERT_TRUE(a->ok() && b.ok());
  const SessionResult refused = RunSession(*stub, Concat({Cfg(), Good("x.weight")}));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("limit of 2 concurrent"));
  EXPECT_TRUE(a->Close().status.ok());
  a.reset();
  // The slot frees once the closed stream is done (asynchronously): retry for a while.
  grpc::Status status;
  for (int i = 0; i < 100; ++i) {
    status = RunSession(*stub, Concat({Cfg(), Good("x.weight")})).status;
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(b.Close().status.ok());
}

}  // namespace
}  // namespace rtnq::server::testing
