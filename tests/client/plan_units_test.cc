// The pieces of rtnq plan: the candidate grammar and its limits, sizes, llama.cpp importance
// files written here from the format definition (an independent writer: legacy .dat and GGUF),
// GGUF -> Hugging Face name mapping, sensitivity checkpoints, and the weighted error (all-ones
// weights give exactly the plain error).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "client/plan/candidates.h"
#include "client/plan/imatrix.h"
#include "client/plan/importance.h"
#include "client/plan/measure.h"
#include "client/plan/planner.h"
#include "core/io/safetensors_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/test_dir.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Labels(const std::vector<Candidate>& cs) {
  std::vector<std::string> out;
  for (const Candidate& c : cs) out.push_back(c.label);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Candidates

TEST(CandidatesTest, ShortFormsAndDefaults) {
  absl::StatusOr<std::vector<Candidate>> c =
      ParseCandidates("int4:g128:sym, int4:g32:asym,int8:row:sym:mse,nf4:g64,int3:q0.9,keep");
  ASSERT_THAT(c, IsOk());
  ASSERT_EQ(c->size(), 6u);
  EXPECT_THAT(Labels(*c), ElementsAre("int4:g128:sym", "int4:g32:asym", "int8:row:sym:mse",
                                      "nf4:g64", "int3:q0.9", "keep"));
  EXPECT_EQ((*c)[0].config->bits, 4);
  EXPECT_EQ((*c)[0].config->group_size, 128);
  EXPECT_EQ((*c)[0].config->scheme, Scheme::kSym);
  EXPECT_EQ((*c)[2].config->group_size, -1);
  EXPECT_TRUE((*c)[2].config->enable_mse_search);
  EXPECT_EQ((*c)[3].config->dtype, QuantDtype::kNf4);
  EXPECT_EQ((*c)[3].config->group_size, 64);
  // Unset options take the contract's defaults: group 32, asym.
  EXPECT_EQ((*c)[4].config->group_size, 32);
  EXPECT_EQ((*c)[4].config->scheme, Scheme::kAsym);
  EXPECT_EQ((*c)[4].config->quantile, 0.9);
  EXPECT_TRUE((*c)[5].keep());
  for (const char* keep : {"fp16", "BF16", "fp32"}) {
    EXPECT_TRUE((*ParseCandidates(keep))[0].keep()) << keep;
  }
}

TEST(CandidatesTest, JsonInlineAndFiles) {
  const std::string dir = testing::FreshTestDir();
  std::ofstream(dir + "/one.json") << R"({"bits": 8, "group_size": 64, "scheme": "sym"})";
  std::ofstream(dir + "/many.json")
      << R"(["int4:g128:sym", {"name": "q4k", "preset": "GGML_TYPE_Q4_K"}, {"dtype": "fp32"}])";
  absl::StatusOr<std::vector<Candidate>> c =
      ParseCandidates(R"(int2:g16,{"bits": 3, "group_size": 64, "name": "three"},@)" + dir +
                      "/one.json,@" + dir + "/many.json");
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(Labels(*c), ElementsAre("int2:g16", "three", "int8 sym g64", "int4:g128:sym", "q4k",
                                      "fp32 (unquantized)"));
  EXPECT_EQ((*c)[1].config->bits, 3);
  EXPECT_TRUE((*c)[4].config->double_quant());
  EXPECT_TRUE((*c)[5].keep());
}

TEST(CandidatesTest, BadItemsAreNamed) {
  struct Case {
    std::string list, message;
  };
  const std::string dir = testing::FreshTestDir();
  std::ofstream(dir + "/nested.json") << R"(["@x.json"])";
  std::ofstream(dir + "/bad.json") << R"({"bits": 4,})";
  const std::vector<Case> cases = {
      {"", "empty"},
      {"int4:g32,,int8", "empty item"},
      {"int9:g32", "candidate \"int9:g32\": unknown type \"int9\""},
      {"int1", "unknown type \"int1\""},
      {"int4:g32:bogus", "candidate \"int4:g32:bogus\": unknown option \"bogus\""},
      {"int4:g32:g64", "the group is given twice"},
      {"int4:sym:asym", "the scheme is given twice"},
      {"int4:g0", "group size must be >= 1"},
      {"nf4:sym", "sym/asym apply to int types only"},
      {"int4:q1.5", "candidate \"int4:q1.5\": quantile"},
      {"int4:sym:fullrange,int1", "unknown type"},
      {"int4:g32:sym,int4:sym:g32", "candidate \"int4:sym:g32\": duplicates candidate"},
      {"keep,fp16", "candidate \"fp16\": duplicates candidate \"keep\""},
      {R"({"bits": 4, "nope": 1})", "nope"},
      {R"({"bits": 4)", "candidate"},
      {R"({"bits": 4, "name": 3})", "\"name\" must be a non-empty string"},
      {"@" + dir + "/nested.json", "cannot name another file"},
      {"@" + dir + "/bad.json", "bad.json"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseCandidates(c.list),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.list;
  }
  EXPECT_THAT(ParseCandidates("int4,@" + dir + "/missing.json"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("candidate \"@" + dir)));
}

TEST(CandidatesTest, CountLimitBelowAtAndBeyond) {
  auto list = [](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
      // Distinct configs: bits 2..8 x quantiles.
      absl::StrAppend(&s, i ? "," : "", "int", 2 + i % 7, ":q0.", 50 + i / 7);
    }
    return s;
  };
  EXPECT_THAT(ParseCandidates(list(kMaxCandidates - 1)), IsOk());
  EXPECT_THAT(ParseCandidates(list(kMaxCandidates)), IsOk());
  EXPECT_THAT(ParseCandidates(list(kMaxCandidates + 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 64 candidates")));
  EXPECT_THAT(ParseCandidates(list(500)), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CandidatesTest, FileSizeLimitAtAndBeyond) {
  const std::string dir = testing::FreshTestDir();
  // A valid file of exactly 1 MiB (padded with spaces), and one byte more.
  std::string text = R"(["int4:g32:sym"])";
  text.resize(1 << 20, ' ');
  std::ofstream(dir + "/at.json") << text;
  std::ofstream(dir + "/over.json") << text << ' ';
  EXPECT_THAT(ParseCandidates("@" + dir + "/at.json"), IsOk());
  EXPECT_THAT(ParseCandidates("@" + dir + "/over.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("larger than")));
}

TEST(ParseSizeTest, UnitsAndErrors) {
  EXPECT_EQ(*ParseSize("1234"), 1234u);
  EXPECT_EQ(*ParseSize("4k"), 4096u);
  EXPECT_EQ(*ParseSize("3.5GiB"), 3758096384u);
  EXPECT_EQ(*ParseSize("2 m"), 2097152u);
  EXPECT_EQ(*ParseSize("1T"), uint64_t{1} << 40);
  EXPECT_EQ(*ParseSize("10b"), 10u);
  for (const char* bad : {"", "-1", "0", "x", "1e30", "nan", "5q"}) {
    EXPECT_THAT(ParseSize(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Importance files, written here from the format definition.

void Put32(std::string& b, int32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
void PutU32(std::string& b, uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string& b, uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); }
void PutF(std::string& b, float v) { b.append(reinterpret_cast<const char*>(&v), 4); }

struct LegacyEntry {
  std::string name;
  int32_t ncall;
  std::vector<float> values;
};

// llama-imatrix's legacy layout: int32 count; per entry int32 name length, name, int32 ncall,
// int32 nval, nval float32; optional int32 chunks and int32-length dataset name.
std::string LegacyFile(const std::vector<LegacyEntry>& entries, bool trailer = true) {
  std::string b;
  Put32(b, static_cast<int32_t>(entries.size()));
  for (const LegacyEntry& e : entries) {
    Put32(b, static_cast<int32_t>(e.name.size()));
    b += e.name;
    Put32(b, e.ncall);
    Put32(b, static_cast<int32_t>(e.values.size()));
    for (float v : e.values) PutF(b, v);
  }
  if (trailer) {
    Put32(b, 100);
    Put32(b, 9);
    b += "wiki.text";
  }
  return b;
}

struct GgufTensorSpec {
  std::string name;
  std::vector<uint64_t> ne;
  std::vector<float> data;
  uint32_t type = 0;
};

void PutStr(std::string& b, const std::string& s) {
  PutU64(b, s.size());
  b += s;
}

// A GGUF v3 file: header, KVs (general.type, imatrix.datasets, chunk count and size, plus a
// u8 array and a float to skip), tensor infos, padding to `alignment`, data.
std::string GgufFile(const std::vector<GgufTensorSpec>& tensors,
                     const std::string& general_type = "imatrix", uint32_t alignment = 32) {
  std::string b = "GGUF";
  PutU32(b, 3);
  PutU64(b, tensors.size());
  PutU64(b, alignment == 32 ? 6 : 7);
  PutStr(b, "general.type");
  PutU32(b, 8);
  PutStr(b, general_type);
  PutStr(b, "imatrix.datasets");
  PutU32(b, 9);
  PutU32(b, 8);
  PutU64(b, 2);
  PutStr(b, "a.txt");
  PutStr(b, "b.txt");
  PutStr(b, "imatrix.chunk_count");
  PutU32(b, 4);
  PutU32(b, 42);
  PutStr(b, "imatrix.chunk_size");
  PutU32(b, 4);
  PutU32(b, 512);
  PutStr(b, "x.bytes");
  PutU32(b, 9);
  PutU32(b, 0);
  PutU64(b, 3);
  b += "abc";
  PutStr(b, "x.float");
  PutU32(b, 6);
  PutF(b, 1.5f);
  if (alignment != 32) {
    PutStr(b, "general.alignment");
    PutU32(b, 4);
    PutU32(b, alignment);
  }
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const GgufTensorSpec& t : tensors) {
    PutStr(b, t.name);
    PutU32(b, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) PutU64(b, d);
    PutU32(b, t.type);
    PutU64(b, offset);
    offsets.push_back(offset);
    offset += (t.data.size() * 4 + alignment - 1) / alignment * alignment;
  }
  b.resize((b.size() + alignment - 1) / alignment * alignment, '\0');
  const size_t data = b.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    b.resize(data + offsets[i], '\0');
    for (float v : tensors[i].data) PutF(b, v);
  }
  return b;
}

TEST(ImatrixTest, LegacyValuesAreDividedByTheirCalls) {
  const std::string bytes =
      LegacyFile({{"blk.0.attn_q.weight", 4, {4, 8, 0, 2}}, {"blk.0.ffn_down.weight", 0, {3, 5}}});
  absl::StatusOr<Imatrix> m = ParseImatrix(bytes, "t.dat");
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->format, "dat");
  EXPECT_EQ(m->chunks, 100);
  EXPECT_THAT(m->datasets, ElementsAre("wiki.text"));
  EXPECT_THAT(m->entries.at("blk.0.attn_q.weight").values, ElementsAre(1, 2, 0, 0.5));
  EXPECT_THAT(m->entries.at("blk.0.ffn_down.weight").values, ElementsAre(3, 5));  // ncall 0
  EXPECT_EQ(m->entries.at("blk.0.attn_q.weight").n_per_row, 0);                   // not recorded
  // Older files end right after the entries, or after the chunk count.
  const std::string bare = LegacyFile({{"a", 1, {1}}}, /*trailer=*/false);
  EXPECT_THAT(ParseImatrix(bare, "t.dat"), IsOk());
  std::string chunks_only = bare;
  Put32(chunks_only, 7);
  EXPECT_EQ(ParseImatrix(chunks_only, "t.dat")->chunks, 7);
}

TEST(ImatrixTest, GgufSumsOverCountsAndNeutralUnseenExperts) {
  const std::string bytes = GgufFile({
      {"blk.0.attn_q.weight.in_sum2", {4, 1}, {8, 16, 0, 4}},
      {"blk.0.attn_q.weight.counts", {1, 1}, {4}},
      {"blk.1.ffn_up_exps.weight.counts", {1, 3}, {2, 0, 1}},
      {"blk.1.ffn_up_exps.weight.in_sum2", {2, 3}, {2, 4, 9, 9, 5, 7}},
      {"blk.1.ffn_up_exps.weight.in_sum", {2, 3}, {1, 1, 1, 1, 1, 1}},  // ignored
  });
  absl::StatusOr<Imatrix> m = ParseImatrix(bytes, "t.gguf");
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->format, "gguf");
  EXPECT_EQ(m->chunks, 42);
  EXPECT_THAT(m->datasets, ElementsAre("a.txt", "b.txt"));
  const ImatrixEntry& q = m->entries.at("blk.0.attn_q.weight");
  EXPECT_EQ(q.n_per_row, 4);
  EXPECT_EQ(q.n_mat, 1);
  EXPECT_THAT(q.values, ElementsAre(2, 4, 0, 1));
  const ImatrixEntry& e = m->entries.at("blk.1.ffn_up_exps.weight");
  EXPECT_EQ(e.n_mat, 3);
  EXPECT_THAT(e.values, ElementsAre(1, 2, 1, 1, 5, 7));  // expert 1 saw no token: 1
  // Another alignment.
  EXPECT_THAT(
      ParseImatrix(GgufFile({{"a.in_sum2", {2}, {1, 2}}, {"a.counts", {1}, {1}}}, "imatrix", 64),
                   "t.gguf"),
      IsOk());
}

TEST(ImatrixTest, EveryTruncationIsAnErrorNotACrash) {
  const std::string legacy = LegacyFile({{"blk.0.attn_q.weight", 2, {1, 2, 3, 4}}});
  const std::string gguf =
      GgufFile({{"w.in_sum2", {4, 1}, {1, 2, 3, 4}}, {"w.counts", {1, 1}, {2}}});
  for (const std::string& full : {legacy, gguf}) {
    ASSERT_THAT(ParseImatrix(full, "t"), IsOk());
    for (size_t n = 0; n < full.size(); ++n) {
      const absl::StatusOr<Imatrix> m = ParseImatrix(full.substr(0, n), "t");
      // A legacy file cut inside its optional trailer is still a valid shorter file only at
      // the trailer's boundaries.
      if (m.ok()) {
        EXPECT_EQ(full, legacy) << n;
        continue;
      }
      EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << n;
      EXPECT_THAT(m.status().message(), HasSubstr("importance file t:")) << n;
    }
  }
}

TEST(ImatrixTest, MalformedFilesNameTheRule) {
  struct Case {
    std::string bytes, message;
  };
  std::string huge_count;
  Put32(huge_count, 1 << 30);
  std::string extra = LegacyFile({{"a", 1, {1}}});
  extra += "zz";
  std::string v1 = "GGUF";
  PutU32(v1, 1);
  PutU64(v1, 0);
  PutU64(v1, 0);
  std::string nested = "GGUF";
  PutU32(nested, 3);
  PutU64(nested, 0);
  PutU64(nested, 1);
  PutStr(nested, "k");
  PutU32(nested, 9);
  PutU32(nested, 9);
  PutU64(nested, 1);
  std::string many = "GGUF";
  PutU32(many, 3);
  PutU64(many, uint64_t{1} << 62);
  PutU64(many, 0);
  const std::vector<Case> cases = {
      {huge_count, "does not fit"},
      {LegacyFile({{"a", 1, {1}}, {"a", 1, {2}}}), "\"a\" appears twice"},
      {LegacyFile({{"a", 1, {1, -2}}}), "value 1 is -2"},
      {LegacyFile({{"a", 1, {1, std::nanf("")}}}), "value 1 is nan"},
      {LegacyFile({{"a", 1, {}}}), "value count 0"},
      {extra, "2 unexpected bytes at the end"},
      {v1, "GGUF version 1"},
      {nested, "nested arrays"},
      {many, "do not fit the file"},
      {GgufFile({{"w.in_sum2", {2, 1}, {1, 2}}, {"w.counts", {1, 1}, {1}}}, "llama"),
       "general.type \"llama\""},
      {GgufFile({{"w.in_sum2", {2, 1}, {1, 2}}}), "has .in_sum2 but no .counts"},
      {GgufFile({{"w.in_sum2", {2, 2}, {1, 2, 3, 4}}, {"w.counts", {1, 1}, {1}}}),
       "1 counts for 2 matrices"},
      {GgufFile({{"w.in_sum2", {2, 1}, {1, 2}, 1}, {"w.counts", {1, 1}, {1}}}), "ggml type 1"},
      {GgufFile({{"w.in_sum2", {2, 1}, {1, 2}}, {"w.counts", {1, 1}, {-1}}}), "count 0 is -1"},
      {GgufFile({{"x", {1}, {1}}}), "no \".in_sum2\" tensors"},
      {GgufFile({{"w.in_sum2", {2, 1}, {1, 2}}, {"w.counts", {1, 1}, {1}}}, "imatrix", 48),
       "not a power of two"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseImatrix(c.bytes, "t"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.message;
  }
  EXPECT_THAT(ReadImatrix(testing::FreshTestDir() + "/none.dat"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(GgufNameTest, HuggingFaceNamesMapToLlamaCpp) {
  auto name = [](const char* hf) {
    std::optional<GgufName> g = GgufNameOf(hf);
    if (!g) return std::string("-");
    return g->expert ? absl::StrCat(g->name, "[", *g->expert, "]") : g->name;
  };
  EXPECT_EQ(name("model.layers.3.self_attn.q_proj.weight"), "blk.3.attn_q.weight");
  EXPECT_EQ(name("model.layers.3.self_attn.k_proj.weight"), "blk.3.attn_k.weight");
  EXPECT_EQ(name("model.layers.3.self_attn.v_proj.weight"), "blk.3.attn_v.weight");
  EXPECT_EQ(name("model.layers.3.self_attn.o_proj.weight"), "blk.3.attn_output.weight");
  EXPECT_EQ(name("model.layers.10.mlp.gate_proj.weight"), "blk.10.ffn_gate.weight");
  EXPECT_EQ(name("model.layers.10.mlp.up_proj.weight"), "blk.10.ffn_up.weight");
  EXPECT_EQ(name("model.layers.10.mlp.down_proj.weight"), "blk.10.ffn_down.weight");
  EXPECT_EQ(name("model.layers.1.mlp.experts.7.down_proj.weight"), "blk.1.ffn_down_exps.weight[7]");
  EXPECT_EQ(name("model.layers.1.block_sparse_moe.experts.2.w1.weight"),
            "blk.1.ffn_gate_exps.weight[2]");
  EXPECT_EQ(name("model.layers.1.block_sparse_moe.experts.2.w3.weight"),
            "blk.1.ffn_up_exps.weight[2]");
  EXPECT_EQ(name("model.layers.1.block_sparse_moe.gate.weight"), "blk.1.ffn_gate_inp.weight");
  EXPECT_EQ(name("model.layers.1.mlp.shared_experts.up_proj.weight"), "blk.1.ffn_up_shexp.weight");
  EXPECT_EQ(name("model.layers.1.mlp.shared_expert_gate.weight"),
            "blk.1.ffn_gate_inp_shexp.weight");
  EXPECT_EQ(name("model.layers.2.self_attn.kv_a_proj_with_mqa.weight"),
            "blk.2.attn_kv_a_mqa.weight");
  EXPECT_EQ(name("model.layers.2.self_attn.q_b_proj.weight"), "blk.2.attn_q_b.weight");
  EXPECT_EQ(name("lm_head.weight"), "output.weight");
  EXPECT_EQ(name("model.embed_tokens.weight"), "-");
  EXPECT_EQ(name("model.layers.2.input_layernorm.weight"), "-");
  EXPECT_EQ(name("model.layers.x.self_attn.q_proj.weight"), "-");
}

// A checkpoint-like tensor over caller-owned bytes.
TensorInfo Info(const std::string& name, std::vector<int64_t> shape, const std::vector<uint8_t>& b,
                ElemType dtype = ElemType::kF32) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return TensorInfo{name, dtype, std::move(shape), n, 0, b};
}

TEST(ImportanceTest, ImatrixEntriesByNameSiblingAndExpert) {
  const std::string dir = testing::FreshTestDir();
  const std::string path = dir + "/m.gguf";
  std::ofstream(path, std::ios::binary) << GgufFile({
      {"blk.0.attn_q.weight.in_sum2", {4, 1}, {1, 2, 3, 4}},
      {"blk.0.attn_q.weight.counts", {1, 1}, {1}},
      {"blk.0.ffn_down.weight.in_sum2", {2, 1}, {5, 6}},
      {"blk.0.ffn_down.weight.counts", {1, 1}, {2}},
      {"blk.1.ffn_gate_exps.weight.in_sum2", {4, 2}, {1, 1, 1, 1, 7, 8, 9, 10}},
      {"blk.1.ffn_gate_exps.weight.counts", {1, 2}, {1, 1}},
  });
  absl::StatusOr<Importance> imp = Importance::FromImatrix(path);
  ASSERT_THAT(imp, IsOk());
  EXPECT_TRUE(imp->weighted());
  EXPECT_FALSE(imp->per_element());
  EXPECT_THAT(imp->description(), HasSubstr("gguf, 3 entries, 42 chunks"));
  const std::vector<uint8_t> bytes(4 * 3 * 4);
  const TensorInfo q = Info("model.layers.0.self_attn.q_proj.weight", {3, 4}, bytes);
  const TensorInfo v = Info("model.layers.0.self_attn.v_proj.weight", {3, 4}, bytes);  // sibling
  const TensorInfo down = Info("model.layers.0.mlp.down_proj.weight", {6, 2}, bytes);
  const TensorInfo e1 = Info("model.layers.1.mlp.experts.1.gate_proj.weight", {3, 4}, bytes);
  const TensorInfo up1 = Info("model.layers.1.mlp.experts.1.up_proj.weight", {3, 4}, bytes);
  absl::StatusOr<std::vector<TensorImportance>> m = imp->Match({&q, &v, &down, &e1, &up1});
  ASSERT_THAT(m, IsOk());
  EXPECT_THAT((*m)[0].columns, ElementsAre(1, 2, 3, 4));
  EXPECT_EQ((*m)[1].source, "blk.0.attn_q.weight");
  EXPECT_THAT((*m)[2].columns, ElementsAre(2.5, 3));
  EXPECT_THAT((*m)[3].columns, ElementsAre(7, 8, 9, 10));
  EXPECT_EQ((*m)[3].source, "blk.1.ffn_gate_exps.weight[1]");
  EXPECT_EQ((*m)[4].source, "blk.1.ffn_gate_exps.weight[1]");  // up reads gate's input

  // Unmatched tensors are all named (the first 10 and the count); sizes must agree.
  std::vector<TensorInfo> missing;
  for (int i = 0; i < 12; ++i) {
    missing.push_back(
        Info(absl::StrCat("model.layers.", 5 + i, ".mlp.down_proj.weight"), {3, 4}, bytes));
  }
  std::vector<const TensorInfo*> ptrs;
  for (const TensorInfo& t : missing) ptrs.push_back(&t);
  EXPECT_THAT(imp->Match(ptrs),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no importance for 12 selected tensors in imatrix")));
  EXPECT_THAT(imp->Match(ptrs), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("model.layers.5.mlp.down_proj.weight")));
  EXPECT_THAT(imp->Match(ptrs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(12 in all)")));
  const TensorInfo wide = Info("model.layers.0.self_attn.q_proj.weight", {2, 6}, bytes);
  EXPECT_THAT(imp->Match({&wide}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("has 4 columns, the tensor's input dimension is 6")));
  const TensorInfo e5 = Info("model.layers.1.mlp.experts.5.gate_proj.weight", {3, 4}, bytes);
  EXPECT_THAT(imp->Match({&e5}), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("not 4 per expert for expert 5")));
}

TEST(ImportanceTest, LegacyEntriesAreCheckedAgainstTheInputDimension) {
  const std::string path = testing::FreshTestDir() + "/m.dat";
  std::ofstream(path, std::ios::binary)
      << LegacyFile({{"blk.0.attn_q.weight", 1, {1, 2, 3, 4}},
                     {"blk.0.ffn_gate_exps.weight", 2, {2, 2, 4, 4, 6, 6}}});
  absl::StatusOr<Importance> imp = Importance::FromImatrix(path);
  ASSERT_THAT(imp, IsOk());
  const std::vector<uint8_t> bytes(64);
  const TensorInfo q = Info("model.layers.0.self_attn.q_proj.weight", {2, 4}, bytes);
  const TensorInfo q3 = Info("model.layers.0.self_attn.q_proj.weight", {2, 3}, bytes);
  const TensorInfo e2 = Info("model.layers.0.mlp.experts.2.gate_proj.weight", {2, 2}, bytes);
  EXPECT_THAT((*imp->Match({&q}))[0].columns, ElementsAre(1, 2, 3, 4));
  EXPECT_THAT((*imp->Match({&e2}))[0].columns, ElementsAre(3, 3));
  EXPECT_THAT(imp->Match({&q3}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has 4 values")));
}

TEST(ImportanceTest, SensitivityCheckpoints) {
  const std::string dir = testing::FreshTestDir();
  auto write = [&](const std::string& name, const std::vector<float>& v, ElemType t,
                   std::vector<int64_t> shape) {
    auto w = SafetensorsWriter::Create(dir + "/" + name + ".safetensors", {{"w", t, shape}},
                                       std::nullopt);
    ASSERT_THAT(w, IsOk());
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    ASSERT_THAT(w->WriteTensor("w", b), IsOk());
    ASSERT_THAT(w->Finish(), IsOk());
  };
  write("good", {1, 2, 3, 4, 5, 6}, ElemType::kF32, {2, 3});
  write("neg", {1, 2, 3, 4, -5, 6}, ElemType::kF32, {2, 3});
  write("shape", {1, 2, 3, 4, 5, 6}, ElemType::kF32, {3, 2});
  const std::vector<uint8_t> bytes(24);
  const TensorInfo w = Info("w", {2, 3}, bytes);
  const TensorInfo other = Info("other", {2, 3}, bytes);
  absl::StatusOr<Importance> good = Importance::FromSensitivity(dir + "/good.safetensors");
  ASSERT_THAT(good, IsOk());
  EXPECT_TRUE(good->per_element());
  absl::StatusOr<std::vector<TensorImportance>> m = good->Match({&w});
  ASSERT_THAT(m, IsOk());
  ASSERT_TRUE((*m)[0].elements.has_value());
  EXPECT_THAT((*m)[0].elements->shape, ElementsAre(2, 3));
  EXPECT_THAT(good->Match({&w, &other}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"other\"")));
  EXPECT_THAT(Importance::FromSensitivity(dir + "/neg.safetensors")->Match({&w}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("element 4 is -5")));
  EXPECT_THAT(Importance::FromSensitivity(dir + "/shape.safetensors")->Match({&w}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("F32 [3, 2]")));
  EXPECT_THAT(Importance::FromSensitivity(dir + "/none.safetensors"),
              StatusIs(absl::StatusCode::kNotFound));
}

// All-ones importance, per column or per element, equals the plain error bit for bit; other
// weights give sum(importance * (w - q)^2).
TEST(WeightedErrorTest, OnesEqualPlainAndWeightsScaleColumns) {
  const std::unique_ptr<Engine> engine = *Engine::Create({.threads = 2});
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0, 1);
  const int64_t rows = 48, cols = 320;
  std::vector<float> w(rows * cols);
  for (float& x : w) x = d(rng);
  std::vector<uint8_t> bytes(w.size() * 4);
  std::memcpy(bytes.data(), w.data(), bytes.size());
  const TensorInput in{"model.layers.0.mlp.up_proj.weight", ElemType::kF32, {rows, cols}, bytes};
  QuantConfig cfg;
  cfg.bits = 3;
  cfg.group_size = 64;
  absl::StatusOr<CandidateMeasure> plain = MeasureCandidate(in, cfg, {}, *engine);
  ASSERT_THAT(plain, IsOk());
  EXPECT_GT(plain->error, 0);
  EXPECT_NEAR(plain->error / (rows * cols), plain->mse, plain->mse * 1e-6);

  TensorImportance ones_cols;
  ones_cols.columns.assign(cols, 1.0f);
  std::vector<float> ones(rows * cols, 1.0f);
  std::vector<uint8_t> ones_bytes(ones.size() * 4);
  std::memcpy(ones_bytes.data(), ones.data(), ones_bytes.size());
  TensorImportance ones_elems;
  ones_elems.elements = TensorInput{"s", ElemType::kF32, {rows, cols}, ones_bytes};
  EXPECT_EQ(MeasureCandidate(in, cfg, ones_cols, *engine)->error, plain->error);
  EXPECT_EQ(MeasureCandidate(in, cfg, ones_elems, *engine)->error, plain->error);

  // Column j weighted by j: the same as per-element weights equal to j on every row.
  TensorImportance by_col;
  std::vector<float> per_elem(rows * cols);
  for (int64_t j = 0; j < cols; ++j) by_col.columns.push_back(static_cast<float>(j));
  for (int64_t i = 0; i < rows * cols; ++i) per_elem[i] = static_cast<float>(i % cols);
  std::vector<uint8_t> pe_bytes(per_elem.size() * 4);
  std::memcpy(pe_bytes.data(), per_elem.data(), pe_bytes.size());
  TensorImportance by_elem;
  by_elem.elements = TensorInput{"s", ElemType::kF32, {rows, cols}, pe_bytes};
  const double a = MeasureCandidate(in, cfg, by_col, *engine)->error;
  const double b = MeasureCandidate(in, cfg, by_elem, *engine)->error;
  EXPECT_NEAR(a, b, a * 1e-12);
  EXPECT_GT(a, plain->error);
}

}  // namespace
}  // namespace rtnq::client
