// Unit tests of the server's small parts: CRC32C, status mapping, token auth, session
// conversion, the work pool and tensor planning (memory rules: memory_budget_test.cc).
#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/quant_config_conversion.h"
#include "server/auth.h"
#include "server/session.h"
#include "server/status_mapping.h"
#include "server/tensor_job.h"
#include "server/work_pool.h"
#include "tests/server/harness.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::server::testing {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

TEST(StatusMappingTest, SameCodeAndTruncatedMessage) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status s(static_cast<absl::StatusCode>(code), code == 0 ? "" : "msg");
    EXPECT_EQ(static_cast<int>(ToGrpcStatus(s).error_code()), code);
  }
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("bad bits")).error_message(), "bad bits");
  const std::string long_message(5000, 'x');
  const grpc::Status g = ToGrpcStatus(absl::DataLossError(long_message));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(g.error_message().size(), kMaxStatusMessageBytes);
  EXPECT_THAT(g.error_message(), ::testing::EndsWith("... [truncated]"));
}

TEST(TokenAuthTest, AcceptsOnlyTheBearerToken) {
  TokenAuth auth("abc");
  EXPECT_THAT(auth.Check("Bearer abc"), IsOk());
  EXPECT_THAT(auth.Check("bearer abc"), IsOk());
  EXPECT_THAT(auth.Check(std::nullopt),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("missing")));
  EXPECT_THAT(auth.Check("Bearer abd"), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(auth.Check("Bearer abcd"), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(auth.Check("Bearer "), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(auth.Check("abc"), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(TokenAuthTest, FromFileTrimsAndRejectsEmpty) {
  TempDir dir;
  std::ofstream(dir.File("t")) << "  tok\n";
  std::ofstream(dir.File("empty")) << " \n";
  auto auth = TokenAuth::FromFile(dir.File("t"));
  ASSERT_THAT(auth, IsOk());
  EXPECT_THAT(auth->Check("Bearer tok"), IsOk());
  EXPECT_THAT(TokenAuth::FromFile(dir.File("empty")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holds no token")));
  EXPECT_THAT(TokenAuth::FromFile(dir.File("missing")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot open")));
}

TEST(SessionTest, DefaultsAndGptqFormat) {
  auto s = SessionFromProto(v1::SessionConfig());
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ((*s)->output_form, v1::OUTPUT_FORM_FAKE_QUANT);
  EXPECT_EQ((*s)->resolver.default_config(), QuantConfig());
  EXPECT_EQ((*s)->gptq_format, GptqFormat::kV2);  // the default is asym
  EXPECT_EQ((*s)->compression_dim, 1);

  v1::SessionConfig sym;
  sym.mutable_default_config()->set_scheme(v1::SCHEME_SYM);
  EXPECT_EQ((*SessionFromProto(sym))->gptq_format, GptqFormat::kV1);
  auto* e = sym.add_weight_config();
  e->set_key("lm_head");
  e->mutable_patch()->set_scheme(v1::SCHEME_ASYM);
  EXPECT_EQ((*SessionFromProto(sym))->gptq_format, GptqFormat::kV2);
  sym.set_gptq_format(v1::GPTQ_FORMAT_V1);
  EXPECT_EQ((*SessionFromProto(sym))->gptq_format, GptqFormat::kV1);
}

TEST(SessionTest, PresetFirstThenFields) {
  v1::QuantConfigPatch p;
  p.set_preset("bnb_nf4");
  p.set_group_size(64);
  auto patch = PatchFromProto(p, "default_config");
  ASSERT_THAT(patch, IsOk());
  QuantConfig c;
  patch->ApplyTo(c);
  EXPECT_EQ(c.dtype, QuantDtype::kNf4);
  EXPECT_EQ(c.group_size, 64);
  EXPECT_TRUE(c.double_quant());
}

TEST(SessionTest, ConfigRoundTripsThroughProto) {
  QuantConfig c;
  c.dtype = QuantDtype::kFp4E2M1;
  c.group_size = -1;
  c.scheme = Scheme::kSym;
  c.quantile = 0.95;
  c.enable_mse_search = true;
  c.group_dim = 0;
  c.double_quant_dtype = QuantDtype::kInt;
  c.double_quant_bits = 6;
  c.double_quant_group_size = 8;
  v1::QuantConfig proto;
  ConfigToProto(c, &proto);
  v1::QuantConfigPatch patch;
  patch.set_dtype(proto.dtype());
  patch.set_bits(proto.bits());
  patch.set_group_size(proto.group_size());
  patch.set_scheme(proto.scheme());
  patch.set_quantile(proto.quantile());
  patch.set_enable_full_range(proto.enable_full_range());
  patch.set_enable_mse_search(proto.enable_mse_search());
  patch.set_group_dim(proto.group_dim());
  patch.set_double_quant_dtype(proto.double_quant_dtype());
  patch.set_double_quant_bits(proto.double_quant_bits());
  patch.set_double_quant_scheme(proto.double_quant_scheme());
  patch.set_double_quant_group_size(proto.double_quant_group_size());
  QuantConfig back;
  PatchFromProto(patch, "x")->ApplyTo(back);
  EXPECT_EQ(back, c);
}

TEST(WorkPoolTest, RunsEveryTaskInOrderAndDrainsOnDestruction) {
  std::vector<int> seen;
  {
    WorkPool pool(1);
    for (int i = 0; i < 100; ++i) pool.Post([&seen, i] { seen.push_back(i); });
  }
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

TEST(TensorJobTest, PlansTheRightMode) {
  auto engine = Engine::Create(EngineOptions{1, ""});
  ASSERT_THAT(engine, IsOk());
  std::atomic<bool> cancel{false};
  auto plan = [&](const v1::SessionConfig& config, const std::string& dtype,
                  std::vector<int64_t> shape, int64_t bytes) {
    v1::TensorHeader h = HeaderRequest("t.weight", dtype, shape, bytes).header();
    return TensorJob::Plan(h, *SessionFromProto(config), **engine, &cancel, PlanLimits{});
  };
  v1::SessionConfig plain;
  auto rows = plan(plain, "F32", {4, 64}, 1024);
  EXPECT_EQ(rows->mode(), TensorJob::Mode::kRowStream);
  EXPECT_EQ(rows->step_bytes(), 256);
  EXPECT_EQ(plan(plain, "BF16", {64}, 128)->mode(), TensorJob::Mode::kEcho);
  EXPECT_EQ(plan(plain, "F32", {4, 64}, 1000)->mode(), TensorJob::Mode::kFailed);
  EXPECT_EQ(plan(plain, "X", {4, 64}, 1024)->dtype_label(), "invalid");
  v1::SessionConfig dim0;
  dim0.mutable_default_config()->set_group_dim(0);
  EXPECT_EQ(plan(dim0, "F32", {4, 64}, 1024)->mode(), TensorJob::Mode::kBuffered);
  v1::SessionConfig gptq = dim0;
  gptq.set_output_form(v1::OUTPUT_FORM_PACKED_GPTQ);
  auto failed = plan(gptq, "F32", {8, 64}, 2048);
  EXPECT_EQ(failed->mode(), TensorJob::Mode::kFailed);
  EXPECT_THAT(failed->header_error(), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace rtnq::server::testing
