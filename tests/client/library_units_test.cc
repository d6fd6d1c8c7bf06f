// Client library pieces: tensor selection, session config merging, the resume journal, the
// writer's kept and reused temporary files --resume relies on, and the report's JSON form.
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client/journal.h"
#include "client/report.h"
#include "client/session_config.h"
#include "client/tensor_selection.h"
#include "core/config/weight_config.h"
#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/test_dir.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

namespace fs = std::filesystem;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TestDir() { return testing::FreshTestDir(); }

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

WeightConfigResolver Resolver(const std::string& json = "{}") {
  return *ParseSessionConfigJson(json);
}

TEST(TensorSelectionTest, DefaultRuleQuantizes2DWeightsExceptEmbeddingsHeadAndNorms) {
  const TensorSelection sel = *TensorSelection::Create({}, {});
  const WeightConfigResolver r = Resolver();
  const std::vector<int64_t> m = {64, 64};
  EXPECT_EQ(sel.Decide("model.layers.0.mlp.up_proj.weight", ElemType::kBF16, m, r)->action,
            TensorAction::kQuantize);
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"}) {
    const TensorDecision d = *sel.Decide(name, ElemType::kBF16, m, r);
    EXPECT_EQ(d.action, TensorAction::kSkip) << name;
    EXPECT_TRUE(d.excluded_by_rule) << name;
  }
  EXPECT_EQ(sel.Decide("model.norm.weight", ElemType::kBF16, {64}, r)->action, TensorAction::kCopy);
  EXPECT_EQ(sel.Decide("model.layers.0.mlp.up_proj.bias", ElemType::kF32, m, r)->action,
            TensorAction::kCopy);
  EXPECT_EQ(sel.Decide("x.weight", ElemType::kI32, m, r)->action, TensorAction::kCopy);
}

TEST(TensorSelectionTest, MoeRoutersAreKeptInFloatAndF64AndIntegersCopiedWithTheReason) {
  const TensorSelection sel = *TensorSelection::Create({}, {});
  const WeightConfigResolver r = Resolver();
  for (const char* name :
       {"model.layers.0.mlp.gate.weight", "model.layers.0.block_sparse_moe.gate.weight",
        "model.layers.0.mlp.router.weight", "model.layers.0.mlp.shared_expert_gate.weight"}) {
    const TensorDecision d = *sel.Decide(name, ElemType::kBF16, {16, 64}, r);
    EXPECT_EQ(d.action, TensorAction::kSkip) << name;
    EXPECT_TRUE(d.excluded_by_rule) << name;
    EXPECT_THAT(d.reason, HasSubstr("MoE router")) << name;
  }
  EXPECT_EQ(
      sel.Decide("model.layers.0.mlp.experts.3.gate_proj.weight", ElemType::kBF16, {16, 64}, r)
          ->action,
      TensorAction::kQuantize);
  // Named in weight_config, a router is quantized like any weight.
  const WeightConfigResolver named =
      Resolver(R"({"weight_config": {"model.layers.0.mlp.gate": {"bits": 8}}})");
  EXPECT_EQ(sel.Decide("model.layers.0.mlp.gate.weight", ElemType::kBF16, {16, 64}, named)->action,
            TensorAction::kQuantize);
  for (ElemType t : {ElemType::kF64, ElemType::kI64, ElemType::kU32, ElemType::kU8}) {
    const TensorDecision d = *sel.Decide("x.weight", t, {16, 64}, r);
    EXPECT_EQ(d.action, TensorAction::kCopy) << ElemTypeName(t);
    EXPECT_EQ(d.reason, "dtype " + ElemTypeName(t));
  }
}

TEST(TensorSelectionTest, WeightConfigNamingATensorOverridesTheNameRule) {
  const TensorSelection sel = *TensorSelection::Create({}, {});
  const WeightConfigResolver r = Resolver(R"({"weight_config": {"lm_head": {"bits": 8}}})");
  const TensorDecision d = *sel.Decide("lm_head.weight", ElemType::kF16, {32, 32}, r);
  EXPECT_EQ(d.action, TensorAction::kQuantize);
  EXPECT_EQ(d.resolved.config.bits, 8);
  EXPECT_EQ(DecidedByText(d.resolved), "layer \"lm_head\"");
}

TEST(TensorSelectionTest, IncludeExcludeAndFp32Config) {
  const TensorSelection sel = *TensorSelection::Create({"*.mlp.*"}, {"*.down_proj"});
  const WeightConfigResolver r =
      Resolver(R"({"weight_config": {"*.gate_proj": {"dtype": "fp32"}}})");
  const std::vector<int64_t> m = {32, 32};
  EXPECT_EQ(sel.Decide("l.0.mlp.up_proj.weight", ElemType::kF32, m, r)->action,
            TensorAction::kQuantize);
  EXPECT_EQ(sel.Decide("l.0.self_attn.q_proj.weight", ElemType::kF32, m, r)->reason,
            "not matched by --include");
  const TensorDecision ex = *sel.Decide("l.0.mlp.down_proj.weight", ElemType::kF32, m, r);
  EXPECT_EQ(ex.action, TensorAction::kSkip);
  EXPECT_THAT(ex.reason, HasSubstr("--exclude"));
  const TensorDecision fp32 = *sel.Decide("l.0.mlp.gate_proj.weight", ElemType::kF32, m, r);
  EXPECT_EQ(fp32.action, TensorAction::kSkip);
  EXPECT_FALSE(fp32.excluded_by_rule);
  // A pattern match that cannot be quantized is skipped with the reason.
  EXPECT_EQ(sel.Decide("l.0.mlp.up_proj.bias", ElemType::kF32, {32}, r)->action,
            TensorAction::kCopy);
}

TEST(TensorSelectionTest, IncludeNamingAnUnquantizableTensorIsAnError) {
  const TensorSelection sel = *TensorSelection::Create({"model.norm.weight"}, {});
  EXPECT_THAT(sel.Decide("model.norm.weight", ElemType::kBF16, {64}, Resolver()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.norm.weight")));
  EXPECT_THAT(TensorSelection::Create({"re:(["}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--include")));
}

TEST(TensorSelectionTest, SplitPatternListKeepsRegexBraces) {
  EXPECT_THAT(SplitPatternList({"a,b", "re:x{2,3}", ",c,"}),
              ElementsAre("a", "b", "re:x{2,3}", "c"));
}

TEST(SessionConfigTest, FlagsOverrideTheFile) {
  const std::string path = TestDir() + "/config.json";
  WriteText(path, R"({"num_bits": 8, "group_size": 64, "weight_config": {"x": {"bits": 2}}})");
  ConfigFlags flags;
  flags.bits = 4;
  flags.scheme = "sym";
  const absl::StatusOr<std::string> text = MergeSessionConfig(path, flags);
  ASSERT_THAT(text, IsOk());
  const nlohmann::json j = nlohmann::json::parse(*text);
  EXPECT_FALSE(j.contains("num_bits"));
  EXPECT_EQ(j["bits"], 4);
  EXPECT_EQ(j["group_size"], 64);
  EXPECT_EQ(j["scheme"], "sym");
  EXPECT_EQ(j["weight_config"]["x"]["bits"], 2);
  const WeightConfigResolver r = *ParseSessionConfigJson(*text);
  EXPECT_EQ(r.Resolve("y.weight")->config.bits, 4);
  EXPECT_EQ(r.Resolve("x.weight")->config.bits, 2);
}

TEST(SessionConfigTest, UnknownKeyAndBadFlagAreNamed) {
  const std::string path = TestDir() + "/config.json";
  WriteText(path, R"({"bitz": 4})");
  EXPECT_THAT(MergeSessionConfig(path, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr(path), HasSubstr("bitz"))));
  ConfigFlags flags;
  flags.bits = 99;
  EXPECT_THAT(MergeSessionConfig("", flags),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bits")));
  EXPECT_THAT(MergeSessionConfig(TestDir() + "/missing.json", {}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(*MergeSessionConfig("", {}), "{}");
}

TEST(SessionConfigTest, GptqWithoutASchemeIsSymAndSaysSo) {
  absl::StatusOr<GptqSchemeDefault> d =
      ApplyGptqSchemeDefault(R"({"bits": 8, "weight_config": {"x": {"scheme": "asym"}}})");
  ASSERT_THAT(d, IsOk());
  const nlohmann::json j = nlohmann::json::parse(d->config_json);
  EXPECT_EQ(j["scheme"], "sym");
  EXPECT_EQ(j["weight_config"]["x"]["scheme"], "asym");  // entries keep what they say
  EXPECT_THAT(d->notice, ::testing::AllOf(HasSubstr("quantizes sym"), HasSubstr("Marlin"),
                                          HasSubstr("--format awq or compressed-tensors")));
  // A scheme or preset the user chose stays, silently.
  for (const char* chosen : {R"({"scheme": "asym"})", R"({"preset": "GGML_TYPE_Q4_K"})"}) {
    d = ApplyGptqSchemeDefault(chosen);
    ASSERT_THAT(d, IsOk());
    EXPECT_EQ(d->config_json, chosen);
    EXPECT_EQ(d->notice, "");
  }
  EXPECT_THAT(ApplyGptqSchemeDefault("[1]"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(JournalTest, RoundTripAndTornLastLineIgnored) {
  const std::string path = TestDir() + "/journal.jsonl";
  JournalEntry a{"a.weight", 7, {{"a.qweight", 1}, {"a.scales", 2}}, {{"name", "a.weight"}}};
  JournalEntry b{"b.weight", 9, {{"b.weight", 3}}, {}};
  {
    auto j = Journal::Create(path, {a});
    ASSERT_THAT(j, IsOk());
    ASSERT_THAT((*j)->Append(b), IsOk());
  }
  std::vector<JournalEntry> loaded = Journal::Load(path);
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].tensor, "a.weight");
  EXPECT_EQ(loaded[0].input_crc32c, 7u);
  EXPECT_EQ(loaded[0].outputs, a.outputs);
  EXPECT_EQ(loaded[0].report["name"], "a.weight");
  EXPECT_EQ(loaded[1].outputs, b.outputs);
  {
    std::ofstream out(path, std::ios::app);
    out << R"({"tensor": "c.weight", "input_crc)";  // killed mid-write
  }
  loaded = Journal::Load(path);
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[1].tensor, "b.weight");
  EXPECT_TRUE(Journal::Load(TestDir() + "/none.jsonl").empty());
}

TEST(WriterResumeTest, KeptTempFileIsReusedTensorByTensor) {
  const std::string dir = TestDir();
  const std::vector<TensorSpec> specs = {{"a", ElemType::kF32, {2}}, {"b", ElemType::kI32, {3}}};
  const std::vector<uint8_t> a(8, 0xaa), b(12, 0xbb);
  SafetensorsWriterOptions o;
  o.temp_path = dir + "/out.part";
  o.keep_temp = true;
  {
    SafetensorsWriter w = *SafetensorsWriter::Create(dir + "/out", specs, std::nullopt, o);
    EXPECT_EQ(w.temp_path(), o.temp_path);
    ASSERT_THAT(w.WriteTensor("a", a), IsOk());
    EXPECT_EQ(w.data_offset() + 20, w.file_size());
  }  // interrupted: the temporary file stays
  ASSERT_TRUE(fs::exists(o.temp_path));
  EXPECT_FALSE(fs::exists(dir + "/out"));

  // Another plan (different shapes) cannot reuse it.
  o.reuse_temp = true;
  EXPECT_THAT(
      SafetensorsWriter::Create(dir + "/out", {{"a", ElemType::kF32, {3}}}, std::nullopt, o),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(o.temp_path)));
  SafetensorsWriter w = *SafetensorsWriter::Create(dir + "/out", specs, std::nullopt, o);
  ASSERT_THAT(w.MarkWritten("a"), IsOk());
  EXPECT_THAT(w.MarkWritten("c"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(w.Finish(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("\"b\"")));
  ASSERT_THAT(w.WriteTensor("b", b), IsOk());
  EXPECT_THAT(w.MarkWritten("b"), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(w.Finish(), IsOk());
  const SafetensorsFile f = *SafetensorsFile::Open(dir + "/out");
  EXPECT_EQ(std::vector<uint8_t>(f.Find("a")->data.begin(), f.Find("a")->data.end()), a);
  EXPECT_EQ(std::vector<uint8_t>(f.Find("b")->data.begin(), f.Find("b")->data.end()), b);
  EXPECT_FALSE(fs::exists(o.temp_path));
}

TEST(ReportTest, JsonRoundTripAndSummary) {
  TensorReport q;
  q.name = "l.0.mlp.up_proj.weight";
  q.action = "quantized";
  q.shape = {64, 32};
  q.dtype = "BF16";
  q.config.bits = 3;
  q.config.group_size = 16;
  q.decided_by = "pattern \"*.up_proj\"";
  q.metrics.elements = 2048;
  q.metrics.groups = 128;
  q.metrics.mse = 1.5e-4;
  q.metrics.snr_db = std::numeric_limits<double>::infinity();
  q.metrics.clip_ratio = 0.9;
  q.metrics.seconds = 0.125;
  q.server_seconds = 0.5;
  q.wall_seconds = 0.25;
  q.served_by = "local";
  q.attempts = 2;
  q.bytes_in = 4096;
  q.bytes_out = 1024;
  const absl::StatusOr<TensorReport> back = TensorReportFromJson(TensorReportToJson(q));
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(TensorReportToJson(*back), TensorReportToJson(q));
  EXPECT_EQ(back->config, q.config);
  EXPECT_EQ(back->metrics.snr_db, q.metrics.snr_db);
  EXPECT_EQ(TensorReportToJson(q)["metrics"]["snr_db"], "inf");
  EXPECT_EQ(TensorReportToJson(q)["timings"]["quantize_seconds"], 0.125);
  EXPECT_EQ(TensorReportToJson(q)["timings"]["server_seconds"], 0.5);

  TensorReport c;
  c.name = "n";
  c.action = "copied";
  c.reason = "1-D [4]";
  c.shape = {4};
  c.dtype = "F32";
  EXPECT_EQ(TensorReportToJson(*TensorReportFromJson(TensorReportToJson(c))),
            TensorReportToJson(c));
  EXPECT_THAT(TensorReportFromJson(nlohmann::ordered_json{{"name", 1}}),
              StatusIs(absl::StatusCode::kInvalidArgument));

  TensorReport q2 = q;
  q2.name = "b";
  q2.metrics.snr_db = 20;
  RunSummary s;
  Summarize({q, c, q2}, s);
  EXPECT_EQ(s.quantized, 2);
  EXPECT_EQ(s.copied, 1);
  ASSERT_EQ(s.worst.size(), 2u);
  EXPECT_EQ(s.worst[0].first, "b");
  const nlohmann::ordered_json report = ReportToJson(s, {q, c});
  EXPECT_EQ(report["summary"]["quantized"], 2);
  EXPECT_EQ(report["tensors"].size(), 2u);
}

}  // namespace
}  // namespace rtnq::client
