// RunQuantize end to end with the local backend on small synthetic checkpoints: every output
// format loads back as planned, streams do not change the bytes, sharded and Hugging Face
// directories, failures that leave nothing behind, and --resume after an interruption.
#include "client/quantize_run.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "client/checkpoint_util.h"
#include "client/local_backend.h"
#include "client/manifest.h"
#include "client/memory_sink.h"
#include "client/synth/synth_checkpoint.h"
#include "core/engine.h"
#include "core/io/file_io.h"
#include "core/io/safetensors.h"
#include "core/io/safetensors_writer.h"
#include "core/io/sharded_checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/test_dir.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

namespace fs = std::filesystem;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string TestDir() { return testing::FreshTestDir(); }

std::string ReadAll(const std::string& path) { return *ReadFileToString(path); }

// A tiny Llama checkpoint in `dir` (model.safetensors or `shards` shards, config.json, plus a
// tokenizer file a Hugging Face directory would have).
void Synth(const std::string& dir, int shards, ElemType dtype = ElemType::kBF16) {
  const std::unique_ptr<Engine> engine = *Engine::Create({2, ""});
  SynthOptions o;
  o.shape = *SynthShapeByName("tiny");
  o.output_dir = dir;
  o.shards = shards;
  o.seed = 7;
  o.dtype = dtype;
  ASSERT_THAT(WriteSynthCheckpoint(o, *engine), IsOk());
  std::ofstream(dir + "/tokenizer.json") << R"({"model": "tiny"})";
}

class QuantizeRunTest : public ::testing::Test {
 protected:
  void SetUp() override { backend_ = *LocalBackend::Create({2, ""}); }

  absl::StatusOr<QuantizeOutcome> Run(QuantizeRunOptions o, Backend* backend = nullptr) {
    std::ostringstream out;
    Progress progress(ProgressMode::kLines, out);
    return RunQuantize(o, backend != nullptr ? *backend : *backend_, progress);
  }

  // Synthesizes dir/in with `shards` shards and quantizes it to dir/clean; returns the options,
  // for runs of the same input to compare with dir/clean.
  QuantizeRunOptions CleanRun(const std::string& dir, int shards, OutputLayout format) {
    Synth(dir + "/in", shards);
    QuantizeRunOptions o;
    o.input = dir + "/in";
    o.format = format;
    o.output = dir + "/clean";
    EXPECT_THAT(Run(o), IsOk());
    return o;
  }

  std::unique_ptr<LocalBackend> backend_;
};

// Nothing but `expected` (relative names) is left in `dir`.
void ExpectOnly(const std::string& dir, std::vector<std::string> expected) {
  std::vector<std::string> have;
  for (const auto& e : fs::directory_iterator(dir)) have.push_back(e.path().filename().string());
  std::sort(have.begin(), have.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(have, expected);
}

TEST_F(QuantizeRunTest, EveryFormatLoadsBackWithPlannedNamesAndShapes) {
  const std::string dir = TestDir();
  Synth(dir + "/in", 1);
  const std::string input = dir + "/in/model.safetensors";
  const SafetensorsFile in = *SafetensorsFile::Open(input);
  const std::string up = "model.layers.0.mlp.up_proj";
  const std::vector<int64_t> up_shape = in.Find(up + ".weight")->shape;  // [768, 256]
  for (OutputLayout f : kOutputLayouts) {
    SCOPED_TRACE(OutputLayoutName(f));
    QuantizeRunOptions o;
    o.input = input;
    o.output = dir + "/out-" + OutputLayoutName(f) + ".safetensors";
    o.format = f;
    o.config_json = f == OutputLayout::kAwq ? R"({"bits": 4, "group_size": 32, "scheme": "asym"})"
                                            : R"({"bits": 4, "group_size": 32, "scheme": "sym"})";
    o.report_path = dir + "/report-" + OutputLayoutName(f) + ".json";
    const absl::StatusOr<QuantizeOutcome> r = Run(o);
    ASSERT_THAT(r, IsOk());
    EXPECT_FALSE(fs::exists(o.output + ".partial"));
    const absl::StatusOr<SafetensorsFile> out = SafetensorsFile::Open(o.output);
    ASSERT_THAT(out, IsOk());
    // 2 layers x 7 projections quantized; embeddings and lm_head skipped; norms copied.
    EXPECT_EQ(r->summary.quantized, 14);
    EXPECT_EQ(r->summary.skipped, 2);
    EXPECT_EQ(r->summary.copied, 5);
    EXPECT_EQ(r->tensors.size(), in.tensors().size());
    EXPECT_NE(out->Find("model.embed_tokens.weight"), nullptr);
    EXPECT_EQ(out->Find("model.norm.weight")->dtype, in.Find("model.norm.weight")->dtype);
    switch (f) {
      case OutputLayout::kFake:
        EXPECT_EQ(out->Find(up + ".weight")->shape, up_shape);
        EXPECT_EQ(out->Find(up + ".weight")->dtype, ElemType::kBF16);
        EXPECT_EQ(out->tensors().size(), in.tensors().size());
        break;
      case OutputLayout::kInc:
        EXPECT_EQ(out->Find(up + ".weight"), nullptr);
        EXPECT_EQ(out->Find(up + ".qweight")->shape, (std::vector<int64_t>{768, 256 / 8}));
        EXPECT_EQ(out->Find(up + ".scales")->shape, (std::vector<int64_t>{768, 256 / 32}));
        break;
      case OutputLayout::kGptq:
        EXPECT_EQ(out->Find(up + ".qweight")->shape, (std::vector<int64_t>{256 * 4 / 32, 768}));
        EXPECT_EQ(out->Find(up + ".qzeros")->shape, (std::vector<int64_t>{8, 768 * 4 / 32}));
        EXPECT_EQ(out->Find(up + ".scales")->dtype, ElemType::kF16);
        EXPECT_EQ(out->Find(up + ".g_idx")->shape, (std::vector<int64_t>{256}));
        EXPECT_EQ(r->summary.gptq_format, "gptq");  // all sym: v1
        break;
      case OutputLayout::kCompressedTensors:
        EXPECT_EQ(out->Find(up + ".weight_packed")->shape, (std::vector<int64_t>{768, 256 / 8}));
        EXPECT_EQ(out->Find(up + ".weight_scale")->dtype, ElemType::kBF16);  // the model's
        EXPECT_EQ(out->Find(up + ".weight_scale")->shape, (std::vector<int64_t>{768, 8}));
        EXPECT_EQ(out->Find(up + ".weight_shape")->dtype, ElemType::kI64);
        EXPECT_EQ(out->Find(up + ".weight_zero_point"), nullptr);  // sym
        break;
      case OutputLayout::kAwq:
        EXPECT_EQ(out->Find(up + ".qweight")->shape, (std::vector<int64_t>{256, 768 / 8}));
        EXPECT_EQ(out->Find(up + ".qzeros")->shape, (std::vector<int64_t>{8, 768 / 8}));
        EXPECT_EQ(out->Find(up + ".scales")->shape, (std::vector<int64_t>{8, 768}));
        EXPECT_EQ(out->Find(up + ".scales")->dtype, ElemType::kF16);
        break;
    }
    // The manifest lets verify recompute; the report file matches the outcome.
    ASSERT_EQ(out->metadata().count(kManifestKey), 1u);
    EXPECT_EQ(out->metadata().at("format"), "pt");
    const absl::StatusOr<Manifest> m = ManifestFromJson(out->metadata().at(kManifestKey), "test");
    ASSERT_THAT(m, IsOk());
    EXPECT_EQ(m->format, f);
    EXPECT_EQ(m->tensors.size(), 14u);
    EXPECT_EQ(m->skipped.count("lm_head.weight"), 1u);
    const nlohmann::json report = nlohmann::json::parse(ReadAll(o.report_path));
    EXPECT_EQ(report["summary"]["quantized"], 14);
    EXPECT_EQ(report["tensors"].size(), in.tensors().size());
    for (const TensorReport& t : r->tensors) {
      if (t.action != "quantized") continue;
      EXPECT_GT(t.metrics.snr_db, 10) << t.name;
      EXPECT_EQ(t.served_by, "local");
    }
  }
}

TEST_F(QuantizeRunTest, StreamsDoNotChangeTheBytes) {
  const std::string dir = TestDir();
  Synth(dir + "/in", 1);
  std::string first;
  for (int streams : {1, 3}) {
    QuantizeRunOptions o;
    o.input = dir + "/in/model.safetensors";
    o.output = dir + "/out" + std::to_string(streams) + ".safetensors";
    o.format = OutputLayout::kGptq;
    o.streams = streams;
    ASSERT_THAT(Run(o), IsOk());
    if (first.empty()) {
      first = ReadAll(o.output);
    } else {
      EXPECT_TRUE(ReadAll(o.output) == first) << "streams=" << streams;
    }
  }
}

TEST_F(QuantizeRunTest, ShardedHuggingFaceDirectoryKeepsSplitIndexAndSideFiles) {
  const std::string dir = TestDir();
  Synth(dir + "/in", 2);
  QuantizeRunOptions o;
  o.input = dir + "/in";
  o.output = dir + "/out";
  o.format = OutputLayout::kGptq;  // default config: asym -> gptq_v2
  o.streams = 2;
  const absl::StatusOr<QuantizeOutcome> r = Run(o);
  ASSERT_THAT(r, IsOk());
  const std::vector<std::string> shards = {ShardFileName(0, 2), ShardFileName(1, 2)};
  ExpectOnly(o.output, {shards[0], shards[1], kShardIndexFileName, "config.json", "tokenizer.json",
                        "quantize_config.json"});
  EXPECT_FALSE(fs::exists(o.output + ".partial"));
  EXPECT_EQ(ReadAll(o.output + "/tokenizer.json"), ReadAll(o.input + "/tokenizer.json"));

  // Same split: each output shard holds the outputs of the same input shard's tensors.
  const ShardedCheckpoint in = *ShardedCheckpoint::Open(o.input);
  const absl::StatusOr<ShardedCheckpoint> out = ShardedCheckpoint::Open(o.output);
  ASSERT_THAT(out, IsOk());  // OpenIndex cross-checks the weight_map against the shards
  const nlohmann::json index = nlohmann::json::parse(ReadAll(o.output + "/" + kShardIndexFileName));
  uint64_t total = 0;
  for (const SafetensorsFile& s : out->shards()) {
    for (const TensorInfo& t : s.tensors()) total += t.data.size();
  }
  EXPECT_EQ(index["metadata"]["total_size"], total);
  const std::string qkv = "model.layers.1.self_attn.k_proj";
  const std::string in_shard = fs::path(in.ShardOf(qkv + ".weight")->path()).filename();
  EXPECT_EQ(index["weight_map"][qkv + ".qweight"], in_shard);
  EXPECT_EQ(index["weight_map"][qkv + ".g_idx"], in_shard);
  EXPECT_FALSE(index["weight_map"].contains(qkv + ".weight"));
  EXPECT_EQ(index["weight_map"]["model.embed_tokens.weight"],
            fs::path(in.ShardOf("model.embed_tokens.weight")->path()).filename().string());

  // config.json keeps its keys and gains quantization_config; quantize_config.json matches.
  const nlohmann::json config = nlohmann::json::parse(ReadAll(o.output + "/config.json"));
  const nlohmann::json original = nlohmann::json::parse(ReadAll(o.input + "/config.json"));
  EXPECT_EQ(config["hidden_size"], original["hidden_size"]);
  const nlohmann::json& q = config["quantization_config"];
  EXPECT_EQ(q["quant_method"], "gptq");
  EXPECT_EQ(q["bits"], 4);
  EXPECT_EQ(q["group_size"], 32);
  EXPECT_EQ(q["sym"], false);
  EXPECT_EQ(q["checkpoint_format"], "gptq_v2");
  EXPECT_EQ(nlohmann::json::parse(ReadAll(o.output + "/quantize_config.json")), q);
  EXPECT_EQ(r->summary.files.size(), 6u);
}

TEST_F(QuantizeRunTest, FakeDirectoryRecordsTheManifestInConfig) {
  const std::string dir = TestDir();
  Synth(dir + "/in", 1, ElemType::kF16);
  QuantizeRunOptions o;
  o.input = dir + "/in";
  o.output = dir + "/out";
  fs::create_directories(o.output);  // an empty directory is accepted
  ASSERT_THAT(Run(o), IsOk());
  ExpectOnly(o.output, {kSingleFileName, "config.json", "tokenizer.json"});
  const nlohmann::json config = nlohmann::json::parse(ReadAll(o.output + "/config.json"));
  EXPECT_EQ(config["rtnq_quantization"]["format"], "fake");
  EXPECT_FALSE(config.contains("quantization_config"));
}

// A checkpoint with one [rows, cols] F32 weight per name (value i*0.01 - 1), optionally a NaN.
std::string SmallCheckpoint(const std::string& path, const std::vector<std::string>& names,
                            const std::string& nan_in = "") {
  std::vector<TensorSpec> specs;
  for (const std::string& n : names) specs.push_back({n, ElemType::kF32, {64, 64}});
  specs.push_back({"model.norm.weight", ElemType::kF32, {64}});
  SafetensorsWriter w = *SafetensorsWriter::Create(path, specs);
  for (const TensorSpec& s : specs) {
    std::vector<float> v(s.shape.size() == 2 ? 64 * 64 : 64);
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * i + s.name.size());
    if (s.name == nan_in) v[100] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_THAT(w.WriteTensor(s.name, {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}),
                IsOk());
  }
  EXPECT_THAT(w.Finish(), IsOk());
  return path;
}

TEST_F(QuantizeRunTest, FailingTensorIsNamedAndLeavesNothing) {
  const std::string dir = TestDir();
  QuantizeRunOptions o;
  o.input =
      SmallCheckpoint(dir + "/in.safetensors", {"a.weight", "b.weight", "c.weight"}, "b.weight");
  o.output = dir + "/out.safetensors";
  o.streams = 2;
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("b.weight")));
  ExpectOnly(dir, {"in.safetensors"});

  // An --include naming a 1-D tensor fails while planning.
  o.input = SmallCheckpoint(dir + "/ok.safetensors", {"a.weight"});
  o.include = {"model.norm.weight"};
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.norm.weight")));
  // A layout the GPTQ format cannot hold fails while planning too.
  o.include = {};
  o.format = OutputLayout::kGptq;
  o.config_json = R"({"group_size": 48})";
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a.weight")));
  o.config_json = R"({"bitz": 4})";
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bitz")));
  ExpectOnly(dir, {"in.safetensors", "ok.safetensors"});
}

TEST_F(QuantizeRunTest, LoaderRulesRefuseForTheTargetBeforeWritingAndWarnOtherwise) {
  const std::string dir = TestDir();
  Synth(dir + "/in", 1);
  QuantizeRunOptions o;
  o.input = dir + "/in";
  o.output = dir + "/out";
  o.format = OutputLayout::kGptq;
  // q_proj 8-bit, k/v 4-bit: vLLM loads q/k/v as one qkv_proj and cannot.
  o.config_json = R"({"scheme": "sym", "group_size": 64,
                      "weight_config": {"model.layers.0.self_attn.q_proj": {"bits": 8}}})";
  o.target = LoaderTarget::kVllm;
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument,
                               ::testing::AllOf(HasSubstr("--target vllm"),
                                                HasSubstr("model.layers.0.self_attn.qkv_proj"),
                                                HasSubstr("int8 sym g64 "
                                                          "(model.layers.0.self_attn.q_proj)"))));
  ExpectOnly(dir, {"in"});  // refused while planning: nothing written, not even .partial

  // --target any writes it and says what vLLM and the loaders ignoring "dynamic" would do.
  o.target = LoaderTarget::kAny;
  std::ostringstream out;
  Progress progress(ProgressMode::kQuiet, out);
  absl::StatusOr<QuantizeOutcome> r = RunQuantize(o, *backend_, progress);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(out.str(),
              HasSubstr("warning: vLLM: fused module model.layers.0.self_attn.qkv_proj"));
  EXPECT_THAT(
      r->summary.warnings,
      ::testing::Contains(HasSubstr("transformers: layer model.layers.0.self_attn.q_proj")));
  EXPECT_THAT(SummaryToJson(r->summary)["warnings"].dump(), HasSubstr("qkv_proj"));

  // INC files INC itself misreads are warned about, naming the INC versions.
  o.output = dir + "/inc";
  o.format = OutputLayout::kInc;
  o.config_json = R"({"bits": 8, "scheme": "asym"})";
  r = Run(o);
  ASSERT_THAT(r, IsOk());
  ASSERT_FALSE(r->summary.warnings.empty());
  EXPECT_THAT(r->summary.warnings[0], HasSubstr("neural-compressor 2.x and 3.x"));
}

TEST_F(QuantizeRunTest, UnwritableOutputIsAClearError) {
  const std::string dir = TestDir();
  QuantizeRunOptions o;
  o.input = SmallCheckpoint(dir + "/in.safetensors", {"a.weight"});
  std::ofstream(dir + "/file") << "x";
  o.output = dir + "/file/out.safetensors";  // a path through a regular file
  const absl::StatusOr<QuantizeOutcome> r = Run(o);
  ASSERT_THAT(r, Not(IsOk()));
  EXPECT_THAT(r.status().message(), HasSubstr(o.output));
  o.output = dir;  // a directory for a file input
  EXPECT_THAT(Run(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("directory")));
  ExpectOnly(dir, {"in.safetensors", "file"});
}

// A backend that counts quantize calls and fails the Nth (1-based) with UNAVAILABLE, after
// streaming garbage for the first half of every output, as a stream that broke mid-answer does;
// and makes the Mth call do the same but then retry inside the session and deliver the result.
class FlakyBackend : public Backend {
 public:
  FlakyBackend(Backend& inner, int fail_at, int retry_at = -1)
      : inner_(inner), fail_at_(fail_at), retry_at_(retry_at) {}
  absl::StatusOr<std::unique_ptr<Session>> OpenSession(const SessionSpec& spec) override {
    auto s = inner_.OpenSession(spec);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Session>(new FlakySession(*this, *std::move(s)));
  }
  std::string Describe() const override { return "flaky"; }
  int calls() const { return calls_.load(); }

 private:
  class FlakySession : public Session {
   public:
    FlakySession(FlakyBackend& b, std::unique_ptr<Session> inner)
        : b_(b), inner_(std::move(inner)) {}
    absl::StatusOr<TensorResult> Quantize(const TensorRequest& t, ResultSink& sink) override {
      const int call = ++b_.calls_;
      if (call != b_.fail_at_ && call != b_.retry_at_) return inner_->Quantize(t, sink);
      MemorySink real;
      absl::StatusOr<TensorResult> r = inner_->Quantize(t, real);
      if (!r.ok()) return r;
      if (absl::Status st = sink.Begin(r->outputs); !st.ok()) return st;
      for (size_t i = 0; i < real.outputs.size(); ++i) {
        std::vector<uint8_t> garbage(real.outputs[i].data.size() / 2, 0xa5);
        if (absl::Status st = sink.Write(i, 0, garbage); !st.ok()) return st;
      }
      sink.Discard();
      if (call == b_.fail_at_) return absl::UnavailableError("replica went away");
      if (absl::Status st = sink.Begin(r->outputs); !st.ok()) return st;
      for (size_t i = 0; i < real.outputs.size(); ++i) {
        if (absl::Status st = sink.Write(i, 0, real.outputs[i].data); !st.ok()) return st;
      }
      r->attempts = 2;
      return r;
    }
    absl::Status Close() override { return inner_->Close(); }

   private:
    FlakyBackend& b_;
    std::unique_ptr<Session> inner_;
  };
  Backend& inner_;
  int fail_at_;
  int retry_at_;
  std::atomic<int> calls_{0};
};

// Tensors retried after half their outputs reached the file are rewritten whole, and their
// journal entries (checksums of what ends up in the file) are reused by --resume.
TEST_F(QuantizeRunTest, RetriedTensorsAreRewrittenAndJournaledRight) {
  const std::string dir = TestDir();
  QuantizeRunOptions o = CleanRun(dir, 1, OutputLayout::kGptq);

  o.output = dir + "/retried";
  FlakyBackend retrying(*backend_, -1, 3);
  absl::StatusOr<QuantizeOutcome> r = Run(o, &retrying);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(std::count_if(r->tensors.begin(), r->tensors.end(),
                          [](const TensorReport& t) { return t.attempts == 2; }),
            1);
  EXPECT_TRUE(ReadAll(dir + "/clean/model.safetensors") ==
              ReadAll(o.output + "/model.safetensors"));

  o.output = dir + "/out";
  FlakyBackend flaky(*backend_, 6, 2);  // 4 tensors finish (one of them retried), the 6th fails
  ASSERT_THAT(Run(o, &flaky), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("--resume")));
  o.resume = true;
  FlakyBackend counting(*backend_, -1);
  r = Run(o, &counting);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->summary.resumed, 5);
  EXPECT_EQ(counting.calls(), 14 - 5);
  EXPECT_TRUE(ReadAll(dir + "/clean/model.safetensors") ==
              ReadAll(o.output + "/model.safetensors"));
}

TEST_F(QuantizeRunTest, ResumeReusesFinishedTensorsAndMatchesACleanRun) {
  const std::string dir = TestDir();
  QuantizeRunOptions o = CleanRun(dir, 2, OutputLayout::kInc);

  o.output = dir + "/out";
  FlakyBackend flaky(*backend_, 6);  // 5 tensors finish, the 6th fails
  const absl::StatusOr<QuantizeOutcome> failed = Run(o, &flaky);
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("--resume")));
  EXPECT_FALSE(fs::exists(o.output));
  EXPECT_TRUE(fs::exists(o.output + ".partial/journal.jsonl"));

  o.resume = true;
  FlakyBackend counting(*backend_, -1);
  const absl::StatusOr<QuantizeOutcome> resumed = Run(o, &counting);
  ASSERT_THAT(resumed, IsOk());
  EXPECT_EQ(resumed->summary.resumed, 5);
  EXPECT_EQ(counting.calls(), 14 - 5);
  EXPECT_FALSE(fs::exists(o.output + ".partial"));
  for (const std::string& f : {ShardFileName(0, 2), ShardFileName(1, 2),
                               std::string(kShardIndexFileName), std::string("config.json")}) {
    EXPECT_TRUE(ReadAll(dir + "/clean/" + f) == ReadAll(o.output + "/" + f)) << f;
  }
}

TEST_F(QuantizeRunTest, ResumeRejectsCorruptedPartsAndRunsWithoutResumeStartOver) {
  const std::string dir = TestDir();
  QuantizeRunOptions o;
  o.input = SmallCheckpoint(dir + "/in.safetensors", {"a.weight", "b.weight", "c.weight"});
  o.output = dir + "/clean.safetensors";
  ASSERT_THAT(Run(o), IsOk());
  const std::string clean = ReadAll(o.output);

  o.output = dir + "/out.safetensors";
  FlakyBackend flaky(*backend_, 3);
  ASSERT_THAT(Run(o, &flaky), StatusIs(absl::StatusCode::kUnavailable));
  // Corrupt the last byte of a.weight's output: only b.weight is reusable.
  const std::string part = o.output + ".partial/out.safetensors.part";
  const SafetensorsFile view = *SafetensorsFile::Open(part);
  const TensorInfo* a = view.Find("a.weight");
  const uint64_t at = view.header_size() + 8 + a->data_offset + a->data.size() - 1;
  {
    std::fstream f(part, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(a->data.back() ^ 0x5a));
  }
  o.resume = true;
  FlakyBackend counting(*backend_, -1);
  absl::StatusOr<QuantizeOutcome> r = Run(o, &counting);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(counting.calls(), 2);
  EXPECT_EQ(r->summary.resumed, 1);
  EXPECT_TRUE(ReadAll(o.output) == clean);

  // Without --resume an old partial output is replaced and everything is sent again.
  fs::remove(o.output);
  FlakyBackend again(*backend_, 3);
  ASSERT_THAT(Run(o, &again), Not(IsOk()));
  o.resume = false;
  FlakyBackend fresh(*backend_, -1);
  r = Run(o, &fresh);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(fresh.calls(), 3);
  EXPECT_EQ(r->summary.resumed, 0);
  EXPECT_TRUE(ReadAll(o.output) == clean);
}

}  // namespace
}  // namespace rtnq::client
