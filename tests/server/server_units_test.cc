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
#include "proto/status_conversion.h"
#include "server/auth.h"
#include "server/logging.h"
#include "server/session.h"
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
  // A cut never splits a UTF-8 character: "é" is two bytes, so the kept part has an even size.
  std::string accents;
  for (int i = 0; i < 1000; ++i) accents += "\xc3\xa9";
  for (const std::string& m : {accents, "x" + accents}) {
    const std::string cut = TruncateStatusMessage(m);
    const size_t kept = cut.size() - std::string("... [truncated]").size();
    EXPECT_LE(cut.size(), kMaxStatusMessageBytes);
    EXPECT_EQ(cut.substr(0, kept), m.substr(0, kept));
    EXPECT_EQ((kept - (m[0] == 'x')) % 2, 0u) << kept;
  }
}

// Both directions live in proto/status_conversion: every canonical code survives the round trip,
// and a wire code number outside them (a peer's TensorError.code) becomes Unknown.
TEST(StatusMappingTest, RoundTripsAndRefusesUnknownCodes) {
  for (int code = 1; code <= 16; ++code) {
    const absl::Status s(static_cast<absl::StatusCode>(code), "msg");
    EXPECT_EQ(FromGrpcStatus(ToGrpcStatus(s)), s);
  }
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  for (int code : {-1, 17, 1000}) {
    EXPECT_EQ(StatusFromCode(code, "m"), absl::UnknownError("m")) << code;
  }
}

TEST(LogSafeTest, EscapesWhatCouldForgeOrCorruptALine) {
  EXPECT_EQ(LogSafe("model.layers.0.mlp.up_proj.weight"), "model.layers.0.mlp.up_proj.weight");
  // A newline cannot start a forged line, a quote cannot end the field.
  EXPECT_EQ(LogSafe("a\n2026-01-01 info stream end code=OK"),
            "a\\x0a2026-01-01 info stream end code=OK");
  EXPECT_EQ(LogSafe("x\" y=\"1"), "x\\\" y=\\\"1");
  EXPECT_EQ(LogSafe("\r\t"), "\\x0d\\x09");
  EXPECT_EQ(LogSafe(std::string("nul\0bell\a", 9)), "nul\\x00bell\\x07");
  EXPECT_EQ(LogSafe("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");  // ANSI colour
  EXPECT_EQ(LogSafe("\x7f"), "\\x7f");
  EXPECT_EQ(LogSafe("\xc2\x9bJ"), "\\xc2\\x9bJ");         // C1 CSI, U+009B
  EXPECT_EQ(LogSafe("\xe2\x80\xae"), "\\xe2\\x80\\xae");  // bidi override U+202E
  EXPECT_EQ(LogSafe("\xff\xfe\xc3"), "\\xff\\xfe\\xc3");  // invalid UTF-8
  for (const std::string& s : {std::string("\n\r\x1b\"\\\xff\x01", 7), std::string(300, '\n')}) {
    const std::string out = LogSafe(s);
    for (char c : out) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(static_cast<unsigned char>(c));
    }
  }
}

TEST(LogSafeTest, BoundsTheLengthAndSaysSo) {
  const std::string name(1 << 20, 'n');
  EXPECT_EQ(LogSafe(name), std::string(kMaxLoggedBytes, 'n') + "... (1048576 bytes)");
  // The worst case, every byte escaped to four: bounded by 4 * max_bytes plus the marker.
  const std::string worst = LogSafe(std::string(1 << 20, '\x01'), 100);
  EXPECT_LE(worst.size(), 4 * 100 + 32u);
  EXPECT_THAT(worst, ::testing::EndsWith("\\x01... (1048576 bytes)"));
  EXPECT_EQ(LogSafe(std::string(kMaxLoggedBytes, 'a')), std::string(kMaxLoggedBytes, 'a'));
  EXPECT_EQ(LogSafe(std::string(kMaxLoggedBytes + 1, 'a')),
            std::string(kMaxLoggedBytes, 'a') + "... (257 bytes)");
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
    // Tasks posted before Start() wait for it.
    for (int i = 0; i < 50; ++i) pool.Post([&seen, i] { seen.push_back(i); });
    pool.Start();
    for (int i = 50; i < 100; ++i) pool.Post([&seen, i] { seen.push_back(i); });
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
