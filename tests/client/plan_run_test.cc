// rtnq plan end to end on synthetic checkpoints with the local measurer: the config it writes
// makes RunQuantize write exactly the predicted bytes in every format (single file and shards),
// budgets hold, fused groups share a choice, selection flags are baked into the config, and
// quantize --dry-run plans a truncated checkpoint without reading its data.
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "client/local_backend.h"
#include "client/manifest.h"
#include "client/plan/dry_run.h"
#include "client/plan/planner.h"
#include "client/quantize_run.h"
#include "client/synth/synth_checkpoint.h"
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

constexpr char kCandidates[] = "int4:g32:sym,int4:g64:asym,int8:g32:sym,nf4:g64,keep";

class PlanRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = *Engine::Create({.threads = 2});
    dir_ = testing::FreshTestDir();
  }

  // A tiny Llama checkpoint: one file (dir/in) or `shards` shards.
  std::string Synth(const std::string& name, int shards = 1) {
    SynthOptions o;
    o.shape = *SynthShapeByName("tiny");
    o.output_dir = dir_ + "/" + name;
    o.shards = shards;
    o.seed = 3;
    EXPECT_THAT(WriteSynthCheckpoint(o, *engine_), IsOk());
    return o.output_dir;
  }

  PlanRequest Request(const std::string& input, OutputLayout format) {
    PlanRequest r;
    r.input = input;
    r.format = format;
    r.candidates = *ParseCandidates(kCandidates);
    return r;
  }

  absl::StatusOr<PlanOutcome> Plan(const PlanRequest& r, const Importance& imp = Importance()) {
    LocalMeasurer m(*engine_);
    return MakePlan(r, m, imp);
  }

  // Quantizes `input` with the plan's config alone; returns each output file's size.
  std::map<std::string, uint64_t> Quantize(const std::string& input, const PlanOutcome& plan,
                                           OutputLayout format, const std::string& out) {
    QuantizeRunOptions o;
    o.input = input;
    o.output = out;
    o.config_json = plan.config.dump();
    o.format = format;
    auto backend = *LocalBackend::Create({.threads = 2});
    Progress progress(ProgressMode::kQuiet, std::cerr);
    absl::StatusOr<QuantizeOutcome> q = RunQuantize(o, *backend, progress);
    EXPECT_THAT(q, IsOk());
    std::map<std::string, uint64_t> sizes;
    if (fs::is_directory(out)) {
      for (const auto& e : fs::directory_iterator(out)) {
        if (e.path().extension() == ".safetensors") sizes[e.path().filename()] = e.file_size();
      }
    } else if (fs::exists(out)) {
      sizes["model.safetensors"] = fs::file_size(out);
    }
    return sizes;
  }

  static std::map<std::string, uint64_t> Predicted(const PlanOutcome& p) {
    return {p.files.begin(), p.files.end()};
  }

  std::unique_ptr<Engine> engine_;
  std::string dir_;
};

TEST_F(PlanRunTest, PredictedSizesEqualWhatQuantizeWritesForEveryFormat) {
  const std::string one = Synth("one"), two = Synth("two", 2);
  const std::string file = one + "/model.safetensors";
  int n = 0;
  for (OutputLayout f : {OutputLayout::kFake, OutputLayout::kInc, OutputLayout::kGptq}) {
    for (const std::string& input : {file, two}) {
      PlanRequest r = Request(input, f);
      if (f == OutputLayout::kFake) {
        r.min_snr_db = 18;  // every config costs the same bytes in fake-quant form
      } else {
        r.target_bpw = 5;
      }
      absl::StatusOr<PlanOutcome> plan = Plan(r);
      ASSERT_THAT(plan, IsOk()) << OutputLayoutName(f) << " " << input;
      const std::string out = absl::StrCat(dir_, "/out", n++, input == file ? ".safetensors" : "");
      EXPECT_EQ(Quantize(input, *plan, f, out), Predicted(*plan)) << OutputLayoutName(f);
      uint64_t total = 0;
      for (const auto& [name, bytes] : plan->files) total += bytes;
      EXPECT_EQ(total, plan->predicted_bytes);
      if (input == two) {
        EXPECT_EQ(plan->files.size(), 2u);
      }
      // The run did what was chosen: each tensor's config in the output's manifest.
      const std::string shard = input == file ? out : out + "/" + plan->files[0].first;
      const ShardedCheckpoint written = *ShardedCheckpoint::Open(input == file ? out : out);
      const std::string text = written.shards()[0].metadata().at(kManifestKey);
      const Manifest manifest = *ManifestFromJson(text, shard);
      std::map<std::string, QuantConfig> done;
      for (const ManifestTensor& t : manifest.tensors) done[t.name] = t.config;
      for (const PlannedChoice& c : plan->tensors) {
        const Candidate& cand = r.candidates[c.candidate];
        if (cand.keep()) {
          EXPECT_EQ(done.count(c.name), 0u) << c.name;
        } else {
          ASSERT_EQ(done.count(c.name), 1u) << c.name;
          EXPECT_EQ(done[c.name], *cand.config) << c.name;
        }
        if (f == OutputLayout::kGptq) {
          EXPECT_NE(cand.label, "nf4:g64");  // no GPTQ nf4 layout
        }
      }
    }
  }
}

TEST_F(PlanRunTest, BudgetsHoldAndErrorFallsAsTheBudgetGrows) {
  const std::string in = Synth("in") + "/model.safetensors";
  double previous = std::numeric_limits<double>::infinity();
  for (double bpw : {4.41, 4.5, 4.75, 5.0, 6.0, 9.0, 16.0, 20.0}) {
    PlanRequest r = Request(in, OutputLayout::kGptq);
    r.target_bpw = bpw;
    absl::StatusOr<PlanOutcome> plan = Plan(r);
    ASSERT_THAT(plan, IsOk()) << bpw;
    EXPECT_LE(plan->bits_per_weight, bpw);
    EXPECT_LE(plan->selected_bytes * 8, bpw * plan->selected_elements);
    EXPECT_LE(plan->total_error, previous) << bpw;
    previous = plan->total_error;
    // Never worse than any single candidate that fits the same budget.
    for (const UniformChoice& u : plan->uniform) {
      if (u.possible && u.bytes <= plan->budget_bytes) {
        EXPECT_LE(plan->total_error, u.error);
      }
    }
    // Fused modules share one choice.
    std::map<std::string, int> by_group;
    for (const PlannedChoice& c : plan->tensors) {
      if (c.group.empty()) continue;
      auto [it, fresh] = by_group.emplace(c.group, c.candidate);
      EXPECT_EQ(it->second, c.candidate) << c.name;
    }
    EXPECT_EQ(by_group.size(), 4u);  // 2 layers x (qkv_proj, gate_up_proj)
  }
  EXPECT_EQ(previous, 0);  // 20 bits per weight keeps everything
  PlanRequest r = Request(in, OutputLayout::kGptq);
  r.target_bpw = 4.2;
  EXPECT_THAT(Plan(r), StatusIs(absl::StatusCode::kOutOfRange,
                                HasSubstr("--target-bpw 4.2 is below the smallest plan")));
  EXPECT_THAT(Plan(r), StatusIs(absl::StatusCode::kOutOfRange,
                                HasSubstr("866304 bytes (4.4062 bits per weight)")));
}

TEST_F(PlanRunTest, TargetSizeCountsWholeFiles) {
  const std::string in = Synth("in") + "/model.safetensors";
  PlanRequest r = Request(in, OutputLayout::kInc);
  r.target_bpw = 4.6;
  const PlanOutcome small = *Plan(r);
  for (uint64_t slack : {0, 1, 20000, 200000}) {
    PlanRequest s = Request(in, OutputLayout::kInc);
    s.target_size = small.predicted_bytes + slack;
    absl::StatusOr<PlanOutcome> plan = Plan(s);
    ASSERT_THAT(plan, IsOk());
    EXPECT_LE(plan->predicted_bytes, *s.target_size);
    EXPECT_LE(plan->total_error, small.total_error);
    EXPECT_EQ(Quantize(in, *plan, OutputLayout::kInc, absl::StrCat(dir_, "/o", slack)),
              Predicted(*plan));
  }
  PlanRequest tiny = Request(in, OutputLayout::kInc);
  tiny.target_size = 1000000;
  EXPECT_THAT(Plan(tiny), StatusIs(absl::StatusCode::kOutOfRange,
                                   HasSubstr("--target-size 1000000 is below the smallest plan")));
}

TEST_F(PlanRunTest, MinSnrFloor) {
  const std::string in = Synth("in") + "/model.safetensors";
  PlanRequest r = Request(in, OutputLayout::kGptq);
  r.min_snr_db = 20;
  absl::StatusOr<PlanOutcome> plan = Plan(r);
  ASSERT_THAT(plan, IsOk());
  for (const PlannedChoice& c : plan->tensors) EXPECT_GE(c.measure.snr_db, 20) << c.name;
  // With a byte budget too: the floor still holds.
  r.target_bpw = 9;
  absl::StatusOr<PlanOutcome> both = Plan(r);
  ASSERT_THAT(both, IsOk());
  for (const PlannedChoice& c : both->tensors) EXPECT_GE(c.measure.snr_db, 20);
  PlanRequest hard = Request(in, OutputLayout::kGptq);
  hard.candidates = *ParseCandidates("int4:g32:sym,int4:g64:asym");
  hard.min_snr_db = 60;
  EXPECT_THAT(Plan(hard), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("no candidate reaches --min-snr 60.00 dB")));
  EXPECT_THAT(Plan(hard),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reaches at most")));
}

TEST_F(PlanRunTest, SelectionIsBakedIntoTheConfig) {
  const std::string in = Synth("in") + "/model.safetensors";
  PlanRequest r = Request(in, OutputLayout::kGptq);
  r.target_bpw = 5;
  r.exclude = {"*.down_proj"};
  r.include = {"re:.*layers.*", "lm_head"};
  absl::StatusOr<PlanOutcome> plan = Plan(r);
  ASSERT_THAT(plan, IsOk());
  EXPECT_EQ(plan->tensors.size(), 13u);  // 2 x 6 projections + lm_head
  EXPECT_EQ(plan->config["weight_config"]["model.layers.1.mlp.down_proj.weight"]["dtype"], "fp32");
  EXPECT_TRUE(plan->config["weight_config"].contains("lm_head.weight"));
  EXPECT_EQ(Quantize(in, *plan, OutputLayout::kGptq, dir_ + "/out.safetensors"), Predicted(*plan));
  r.include = {"nothing.*"};
  EXPECT_THAT(Plan(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nothing to plan")));
}

TEST_F(PlanRunTest, SnrObjectiveBeatsEveryUniformCandidateAtTheSameSize) {
  const std::string in = Synth("in") + "/model.safetensors";
  for (double bpw : {4.5, 5.0, 6.0}) {
    PlanRequest r = Request(in, OutputLayout::kGptq);
    r.candidates = *ParseCandidates("int4:g32:sym,int4:g64:asym,int8:g32:sym,int3:g32:asym");
    r.objective = PlanObjective::kSnr;
    r.target_bpw = bpw;
    absl::StatusOr<PlanOutcome> plan = Plan(r);
    ASSERT_THAT(plan, IsOk());
    for (const UniformChoice& u : plan->uniform) {
      if (u.possible && u.bytes <= plan->budget_bytes) {
        EXPECT_GE(plan->snr_mean_db, u.snr_mean_db - 1e-9) << bpw;
      }
    }
  }
}

TEST_F(PlanRunTest, AllOnesImatrixGivesThePlainPlan) {
  const std::string in = Synth("in") + "/model.safetensors";
  // A legacy imatrix of ones for every projection (ncall 1), written as llama-imatrix does.
  const std::string path = dir_ + "/ones.dat";
  {
    std::ofstream f(path, std::ios::binary);
    auto put = [&](int32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
    const std::vector<std::pair<std::string, int>> entries = {
        {"attn_q", 256},   {"attn_k", 256}, {"attn_v", 256},  {"attn_output", 256},
        {"ffn_gate", 256}, {"ffn_up", 256}, {"ffn_down", 768}};
    put(2 * static_cast<int32_t>(entries.size()));
    for (int layer = 0; layer < 2; ++layer) {
      for (const auto& [name, n] : entries) {
        const std::string full = absl::StrCat("blk.", layer, ".", name, ".weight");
        put(static_cast<int32_t>(full.size()));
        f << full;
        put(1);
        put(n);
        const std::vector<float> ones(n, 1.0f);
        f.write(reinterpret_cast<const char*>(ones.data()), 4 * n);
      }
    }
  }
  PlanRequest r = Request(in, OutputLayout::kGptq);
  r.target_bpw = 4.8;
  const PlanOutcome plain = *Plan(r);
  absl::StatusOr<Importance> ones = Importance::FromImatrix(path);
  ASSERT_THAT(ones, IsOk());
  absl::StatusOr<PlanOutcome> weighted = Plan(r, *ones);
  ASSERT_THAT(weighted, IsOk());
  EXPECT_EQ(weighted->total_error, plain.total_error);
  EXPECT_EQ(weighted->config, plain.config);
  EXPECT_THAT(weighted->importance, HasSubstr("imatrix"));
  EXPECT_EQ(weighted->tensors[0].importance, "blk.0.attn_q.weight");
}

TEST_F(PlanRunTest, DryRunPlansATruncatedCheckpointWithoutItsData) {
  const std::string full = Synth("in") + "/model.safetensors";
  const std::string cut = dir_ + "/cut.safetensors";
  fs::copy_file(full, cut);
  const SafetensorsFile f = *SafetensorsFile::Open(full);
  fs::resize_file(cut, 8 + f.header_size() + 10);  // the header and 10 bytes of data
  for (OutputLayout fmt : {OutputLayout::kFake, OutputLayout::kInc, OutputLayout::kGptq}) {
    QuantizeRunOptions o;
    o.input = full;
    o.output = dir_ + "/" + OutputLayoutName(fmt) + ".safetensors";
    o.format = fmt;
    o.config_json = R"({"bits": 4, "group_size": 64, "scheme": "sym",
                        "weight_config": {"*.down_proj": {"bits": 8}}})";
    absl::StatusOr<DryRun> whole = DryRunQuantize(o);
    ASSERT_THAT(whole, IsOk());
    QuantizeRunOptions c = o;
    c.input = cut;
    absl::StatusOr<DryRun> truncated = DryRunQuantize(c);
    ASSERT_THAT(truncated, IsOk());
    EXPECT_EQ(truncated->total_bytes, whole->total_bytes);
    EXPECT_EQ(DryRunJson(o, *truncated)["tensors"], DryRunJson(o, *whole)["tensors"]);
    EXPECT_THAT(DryRunText(o, *truncated), HasSubstr("14 quantized, 2 skipped, 5 copied"));
    // The real run writes what the dry run predicted.
    auto backend = *LocalBackend::Create({.threads = 2});
    Progress progress(ProgressMode::kQuiet, std::cerr);
    ASSERT_THAT(RunQuantize(o, *backend, progress), IsOk());
    EXPECT_EQ(fs::file_size(o.output), whole->total_bytes) << OutputLayoutName(fmt);
    // Its planning errors are the real run's.
    QuantizeRunOptions bad = c;
    bad.config_json = R"({"group_size": 100})";
    if (fmt == OutputLayout::kGptq) {
      EXPECT_THAT(DryRunQuantize(bad),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("divisible")));
    }
  }
}

TEST_F(PlanRunTest, RequestErrors) {
  const std::string in = Synth("in") + "/model.safetensors";
  PlanRequest r = Request(in, OutputLayout::kGptq);
  EXPECT_THAT(Plan(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("give a budget")));
  r.target_bpw = -1;
  EXPECT_THAT(Plan(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("positive")));
  r.target_bpw = 5;
  r.candidates.clear();
  EXPECT_THAT(Plan(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no candidates")));
  r.candidates = *ParseCandidates("nf4:g64,int4:g100:sym");
  EXPECT_THAT(Plan(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("no candidate applies to tensor")));
  r.input = dir_ + "/missing";
  EXPECT_THAT(Plan(r), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace rtnq::client
