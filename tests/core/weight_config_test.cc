#include "core/config/weight_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/status_matchers.h"
#include "tests/testing/weight_config_helpers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::Bits;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::MustCreate;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

// Asserts which entry decided `tensor`, how, and that the bits it set were applied.
void ExpectDecided(const WeightConfigResolver& r, const std::string& tensor, const std::string& key,
                   const std::string& kind, int bits) {
  const ResolvedConfig rc = r.Resolve(tensor).value();
  EXPECT_EQ(rc.decided_by, key) << tensor;
  EXPECT_EQ(rc.match_kind, kind) << tensor;
  EXPECT_EQ(rc.config.bits, bits) << tensor;
}

// ---------------------------------------------------------------------------------------------
// Matching and precedence.

TEST(WeightConfigResolverTest, DefaultWhenNothingMatches) {
  QuantConfig def;
  def.group_size = 128;
  WeightConfigResolver r = MustCreate({{"model.fc1", Bits(8)}, {"re:.*attn.*", Bits(2)}}, def);
  const ResolvedConfig rc = r.Resolve("model.fc2.weight").value();
  EXPECT_EQ(rc.config, def);
  EXPECT_EQ(rc.decided_by, "");
  EXPECT_EQ(rc.match_kind, "default");
  EXPECT_EQ(r.Resolve("").value().match_kind, "default");
  EXPECT_EQ(MustCreate({}).Resolve("anything").value().match_kind, "default");
}

TEST(WeightConfigResolverTest, ExactTensorName) {
  WeightConfigResolver r = MustCreate({{"model.fc1.weight", Bits(8)}});
  ExpectDecided(r, "model.fc1.weight", "model.fc1.weight", "tensor", 8);
  ExpectDecided(r, "model.fc1.bias", "", "default", 4);
  ExpectDecided(r, "model.fc1", "", "default", 4);
  ExpectDecided(r, "xmodel.fc1.weight", "", "default", 4);
}

TEST(WeightConfigResolverTest, LayerNameIsTensorMinusLastComponent) {
  WeightConfigResolver r = MustCreate({{"a.b.fc1", Bits(8)}, {"lm_head", Bits(6)}});
  ExpectDecided(r, "a.b.fc1.weight", "a.b.fc1", "layer", 8);
  ExpectDecided(r, "a.b.fc1.bias", "a.b.fc1", "layer", 8);
  ExpectDecided(r, "lm_head.weight", "lm_head", "layer", 6);
  // Only the last component is dropped: a deeper tensor belongs to another layer.
  ExpectDecided(r, "a.b.fc1.sub.weight", "", "default", 4);
  // A name without a dot has no layer; it can only match as a tensor.
  ExpectDecided(r, "lm_head", "lm_head", "tensor", 6);
  ExpectDecided(r, "a.b.fc10.weight", "", "default", 4);
}

TEST(WeightConfigResolverTest, TensorBeatsLayerBeatsPattern) {
  // Listed in the opposite order of precedence so listing order cannot be what decides.
  WeightConfigResolver r = MustCreate(
      {{"re:.*", Bits(2)}, {"m.fc1*", Bits(3)}, {"m.fc1", Bits(5)}, {"m.fc1.weight", Bits(8)}});
  ExpectDecided(r, "m.fc1.weight", "m.fc1.weight", "tensor", 8);
  ExpectDecided(r, "m.fc1.bias", "m.fc1", "layer", 5);
  ExpectDecided(r, "m.fc1x.bias", "m.fc1*", "pattern", 3);
  ExpectDecided(r, "other", "re:.*", "pattern", 2);
}

TEST(WeightConfigResolverTest, LayerBeatsLongerPattern) {
  WeightConfigResolver r = MustCreate({{"re:model\\.layers\\.[0-9]+\\.mlp\\.fc1\\.weight", Bits(2)},
                                       {"model.layers.0.mlp.fc1", Bits(8)}});
  ExpectDecided(r, "model.layers.0.mlp.fc1.weight", "model.layers.0.mlp.fc1", "layer", 8);
  ExpectDecided(r, "model.layers.1.mlp.fc1.weight",
                "re:model\\.layers\\.[0-9]+\\.mlp\\.fc1\\.weight", "pattern", 2);
}

TEST(WeightConfigResolverTest, LongerPatternBeatsShorter) {
  WeightConfigResolver r = MustCreate({{"*fc1*", Bits(2)},               // 5 chars
                                       {"re:.*layers.*fc1.*", Bits(3)},  // 18 chars
                                       {"*layers.1.*", Bits(5)}});       // 11 chars
  ExpectDecided(r, "m.layers.1.fc1.weight", "re:.*layers.*fc1.*", "pattern", 3);
  ExpectDecided(r, "m.layers.1.fc2.weight", "*layers.1.*", "pattern", 5);
  ExpectDecided(r, "m.fc1.weight", "*fc1*", "pattern", 2);
}

TEST(WeightConfigResolverTest, FirstListedWinsAmongEqualLength) {
  WeightConfigResolver a = MustCreate({{"*.fc1.*", Bits(2)}, {"*.fc?.*", Bits(3)}});
  WeightConfigResolver b = MustCreate({{"*.fc?.*", Bits(3)}, {"*.fc1.*", Bits(2)}});
  ExpectDecided(a, "m.fc1.weight", "*.fc1.*", "pattern", 2);
  ExpectDecided(b, "m.fc1.weight", "*.fc?.*", "pattern", 3);
  // Only one matches: order is irrelevant.
  ExpectDecided(a, "m.fc2.weight", "*.fc?.*", "pattern", 3);
}

TEST(WeightConfigResolverTest, RegexIsFullMatchNotSearch) {
  WeightConfigResolver r = MustCreate({{"re:fc1", Bits(8)}, {"re:q_proj|k_proj", Bits(6)}});
  ExpectDecided(r, "model.fc1.weight", "", "default", 4);  // a search would find "fc1"
  ExpectDecided(r, "fc1", "re:fc1", "pattern", 8);
  ExpectDecided(r, "fc1.weight", "re:fc1", "pattern", 8);  // via its layer name "fc1"
  ExpectDecided(r, "k_proj", "re:q_proj|k_proj", "pattern", 6);
  ExpectDecided(r, "xk_proj", "", "default", 4);
  ExpectDecided(r, "k_projx", "", "default", 4);

  WeightConfigResolver partial = MustCreate({{"re:.*fc1.*", Bits(8)}});
  ExpectDecided(partial, "model.fc1.weight", "re:.*fc1.*", "pattern", 8);
}

TEST(WeightConfigResolverTest, RegexIsEcmaScript) {
  WeightConfigResolver r = MustCreate({{"re:model\\.layers\\.\\d+\\.(q|k)_proj", Bits(8)}});
  ExpectDecided(r, "model.layers.12.q_proj.weight", "re:model\\.layers\\.\\d+\\.(q|k)_proj",
                "pattern", 8);
  ExpectDecided(r, "model.layers.x.q_proj.weight", "", "default", 4);
  ExpectDecided(r, "model.layers.1.v_proj.weight", "", "default", 4);
}

TEST(WeightConfigResolverTest, GlobStarCrossesDots) {
  WeightConfigResolver r =
      MustCreate({{"model.*.mlp.*", Bits(8)}, {"*.q_proj.weight", Bits(6)}, {"blk.?.w", Bits(2)}});
  ExpectDecided(r, "model.layers.0.mlp.fc1.weight", "model.*.mlp.*", "pattern", 8);
  ExpectDecided(r, "model.layers.31.self_attn.q_proj.weight", "*.q_proj.weight", "pattern", 6);
  ExpectDecided(r, "a.b.c.q_proj.bias", "", "default", 4);
  // `?` is exactly one character.
  ExpectDecided(r, "blk.1.w", "blk.?.w", "pattern", 2);
  ExpectDecided(r, "blk.12.w", "", "default", 4);
  ExpectDecided(r, "blk...w", "blk.?.w", "pattern", 2);  // `?` may be a dot
  // Globs are full matches too, and other characters are literal.
  ExpectDecided(r, "xmodel.a.mlp.b", "", "default", 4);
}

TEST(WeightConfigResolverTest, GlobMatchesLayerName) {
  WeightConfigResolver r = MustCreate({{"*.fc1", Bits(8)}});
  ExpectDecided(r, "model.layers.0.fc1.weight", "*.fc1", "pattern", 8);
  ExpectDecided(r, "model.layers.0.fc1", "*.fc1", "pattern", 8);
  ExpectDecided(r, "model.layers.0.fc1.sub.weight", "", "default", 4);
}

TEST(WeightConfigResolverTest, GlobBacktracking) {
  WeightConfigResolver r = MustCreate({{"*a*b*c", Bits(8)}, {"**x", Bits(3)}});
  ExpectDecided(r, "aaabbbccc", "*a*b*c", "pattern", 8);
  ExpectDecided(r, "abcabx", "**x", "pattern", 3);
  ExpectDecided(r, "cba", "", "default", 4);
  ExpectDecided(r, "x", "**x", "pattern", 3);
  // Pathological name: must finish quickly (no exponential backtracking).
  WeightConfigResolver slow = MustCreate({{"*a*a*a*a*a*a*a*a*b", Bits(8)}});
  ExpectDecided(slow, std::string(4096, 'a'), "", "default", 4);
}

TEST(WeightConfigResolverTest, EntryOverridesOnlyFieldsItSets) {
  QuantConfig def;
  def.group_size = 128;
  def.scheme = Scheme::kSym;
  def.quantile = 0.9;
  def.double_quant_dtype = QuantDtype::kInt;
  QuantConfigPatch p;
  p.bits = 8;
  p.group_dim = 0;
  WeightConfigResolver r = MustCreate({{"lm_head", p}}, def);
  QuantConfig expected = def;
  expected.bits = 8;
  expected.group_dim = 0;
  const ResolvedConfig rc = r.Resolve("lm_head.weight").value();
  EXPECT_EQ(rc.config, expected);
  EXPECT_EQ(rc.match_kind, "layer");
}

TEST(WeightConfigResolverTest, OnlyTheWinningEntryApplies) {
  // The layer entry wins; the pattern's group_size must not leak into the result.
  QuantConfigPatch pattern;
  pattern.group_size = 64;
  pattern.bits = 2;
  WeightConfigResolver r = MustCreate({{"*", pattern}, {"m.fc1", Bits(8)}});
  const ResolvedConfig rc = r.Resolve("m.fc1.weight").value();
  EXPECT_EQ(rc.config.bits, 8);
  EXPECT_EQ(rc.config.group_size, 32);
}

TEST(WeightConfigResolverTest, EmptyEntryRestoresDefault) {
  WeightConfigResolver r = MustCreate({{"*", Bits(2)}, {"lm_head", {}}});
  ExpectDecided(r, "lm_head.weight", "lm_head", "layer", 4);
  ExpectDecided(r, "m.fc1.weight", "*", "pattern", 2);
}

TEST(WeightConfigResolverTest, Fp32SkipsTensor) {
  QuantConfigPatch skip;
  skip.dtype = QuantDtype::kFp32;
  WeightConfigResolver r = MustCreate({{"lm_head", skip}});
  const ResolvedConfig rc = r.Resolve("lm_head.weight").value();
  EXPECT_EQ(rc.config.dtype, QuantDtype::kFp32);
  EXPECT_EQ(rc.decided_by, "lm_head");
  // An fp32 entry is valid even when its other fields would not be.
  QuantConfigPatch odd = skip;
  odd.bits = 99;
  EXPECT_THAT(WeightConfigResolver::Create({}, {{"x", odd}}), IsOk());
}

TEST(WeightConfigResolverTest, AccessorsAndMove) {
  QuantConfig def;
  def.bits = 3;
  WeightConfigResolver r = MustCreate({{"a", Bits(8)}, {"b*", Bits(2)}}, def);
  EXPECT_EQ(r.default_config(), def);
  ASSERT_EQ(r.entries().size(), 2u);
  EXPECT_EQ(r.entries()[1].key, "b*");
  WeightConfigResolver moved = std::move(r);
  ExpectDecided(moved, "bxx", "b*", "pattern", 2);
  WeightConfigResolver other = MustCreate({});
  other = std::move(moved);
  ExpectDecided(other, "a.weight", "a", "layer", 8);
}

TEST(WeightConfigResolverTest, ResolveIsThreadSafe) {
  WeightConfigResolver r =
      MustCreate({{"re:.*\\.layers\\.[0-9]+\\.fc1", Bits(8)}, {"*fc2*", Bits(2)}, {"x", Bits(6)}});
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r, &failures, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string n = std::to_string(i);
        if (r.Resolve("m.layers." + n + ".fc1.weight").value().config.bits != 8) ++failures[t];
        if (r.Resolve("m.layers." + n + ".fc2.weight").value().config.bits != 2) ++failures[t];
        if (r.Resolve("x.weight").value().config.bits != 6) ++failures[t];
        if (r.Resolve("m.layers." + n + ".fc3.weight").value().match_kind != "default")
          ++failures[t];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

// ---------------------------------------------------------------------------------------------
// Create's validation.

TEST(WeightConfigResolverTest, InvalidMergedConfigNamesKey) {
  EXPECT_THAT(WeightConfigResolver::Create({}, {{"ok", Bits(8)}, {"lm_head", Bits(9)}}),
              StatusIs(kInvalid,
                       AllOf(StartsWith("weight_config[\"lm_head\"]: bits"), HasSubstr("got 9"))));
  QuantConfigPatch nf4;
  nf4.dtype = QuantDtype::kNf4;
  QuantConfig def;
  def.bits = 8;  // valid for int, but not once the entry makes it nf4
  EXPECT_THAT(WeightConfigResolver::Create(def, {{"*.fc1", nf4}}),
              StatusIs(kInvalid, AllOf(StartsWith("weight_config[\"*.fc1\"]: "), HasSubstr("nf4"),
                                       HasSubstr("got 8"))));
}

TEST(WeightConfigResolverTest, InvalidDefault) {
  QuantConfig def;
  def.group_size = 0;
  EXPECT_THAT(WeightConfigResolver::Create(def, {}),
              StatusIs(kInvalid, AllOf(StartsWith("config: group_size"), HasSubstr("got 0"))));
}

TEST(WeightConfigResolverTest, BadRegex) {
  EXPECT_THAT(WeightConfigResolver::Create({}, {{"re:((", Bits(8)}}),
              StatusIs(kInvalid, StartsWith("weight_config[\"re:((\"]: invalid regex \"((\"")));
  EXPECT_THAT(WeightConfigResolver::Create({}, {{"re:[a-", Bits(8)}}),
              StatusIs(kInvalid, HasSubstr("invalid regex")));
  EXPECT_THAT(WeightConfigResolver::Create({}, {{"re:", Bits(8)}}),
              StatusIs(kInvalid, HasSubstr("weight_config[\"re:\"]: empty regex")));
}

TEST(WeightConfigResolverTest, EmptyAndDuplicateKeys) {
  EXPECT_THAT(WeightConfigResolver::Create({}, {{"", Bits(8)}}),
              StatusIs(kInvalid, HasSubstr("weight_config[\"\"]: key is empty")));
  EXPECT_THAT(WeightConfigResolver::Create({}, {{"a", Bits(8)}, {"b", Bits(2)}, {"a", Bits(8)}}),
              StatusIs(kInvalid, AllOf(HasSubstr("weight_config[\"a\"]: duplicate key"),
                                       HasSubstr("entries 0 and 2"))));
}

// ---------------------------------------------------------------------------------------------
// Session JSON.

TEST(ParseSessionConfigJsonTest, DefaultsOnly) {
  absl::StatusOr<WeightConfigResolver> r = ParseSessionConfigJson("{}");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->default_config(), QuantConfig{});
  EXPECT_TRUE(r->entries().empty());

  r = ParseSessionConfigJson(R"({"num_bits": 8, "scheme": "sym", "group_size": -1})");
  ASSERT_THAT(r, IsOk());
  QuantConfig expected;
  expected.bits = 8;
  expected.scheme = Scheme::kSym;
  expected.group_size = -1;
  EXPECT_EQ(r->default_config(), expected);
}

TEST(ParseSessionConfigJsonTest, WeightConfigEntries) {
  absl::StatusOr<WeightConfigResolver> r = ParseSessionConfigJson(R"({
    "bits": 4, "group_size": 128,
    "weight_config": {
      "lm_head": {"dtype": "fp32"},
      "model.layers.0.mlp.down_proj.weight": {"bits": 8, "group_size": 32},
      "re:.*self_attn\\.(q|k)_proj": {"dtype": "nf4"},
      "*.mlp.*": {"preset": "GGML_TYPE_Q4_K", "group_size": 64}
    }
  })");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->entries().size(), 4u);
  EXPECT_EQ(r->entries()[0].key, "lm_head");  // listed order is kept
  EXPECT_EQ(r->entries()[3].key, "*.mlp.*");

  EXPECT_EQ(r->Resolve("lm_head.weight").value().config.dtype, QuantDtype::kFp32);

  ResolvedConfig down = r->Resolve("model.layers.0.mlp.down_proj.weight").value();
  EXPECT_EQ(down.match_kind, "tensor");
  EXPECT_EQ(down.config.bits, 8);
  EXPECT_EQ(down.config.group_size, 32);

  ResolvedConfig q = r->Resolve("model.layers.3.self_attn.q_proj.weight").value();
  EXPECT_EQ(q.match_kind, "pattern");
  EXPECT_EQ(q.config.dtype, QuantDtype::kNf4);
  EXPECT_EQ(q.config.group_size, 128);  // from the session default

  ResolvedConfig up = r->Resolve("model.layers.3.mlp.up_proj.weight").value();
  EXPECT_EQ(up.decided_by, "*.mlp.*");
  EXPECT_EQ(up.config.group_size, 64);
  EXPECT_EQ(up.config.double_quant_bits, 6);

  ResolvedConfig v = r->Resolve("model.layers.3.self_attn.v_proj.weight").value();
  EXPECT_EQ(v.match_kind, "default");
  EXPECT_EQ(v.config.group_size, 128);
}

TEST(ParseSessionConfigJsonTest, ListedOrderBreaksTies) {
  // Keys of equal length, listed against alphabetical order: the first listed must win.
  absl::StatusOr<WeightConfigResolver> r = ParseSessionConfigJson(R"({
    "weight_config": {"*z.weight": {"bits": 2}, "*a.weight": {"bits": 8}, "*.weight": {"bits": 3}}
  })");
  ASSERT_THAT(r, IsOk());
  // "*z.weight" and "*a.weight" are 9 chars; "m.za.weight" matches only "*a.weight".
  EXPECT_EQ(r->Resolve("m.za.weight").value().config.bits, 8);
  r = ParseSessionConfigJson(R"({
    "weight_config": {"z*.weight": {"bits": 2}, "*a.weight": {"bits": 8}}
  })");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->Resolve("za.weight").value().decided_by, "z*.weight");
  r = ParseSessionConfigJson(R"({
    "weight_config": {"*a.weight": {"bits": 8}, "z*.weight": {"bits": 2}}
  })");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->Resolve("za.weight").value().decided_by, "*a.weight");
}

TEST(ParseSessionConfigJsonTest, ErrorsInsideEntriesNameTheKey) {
  EXPECT_THAT(
      ParseSessionConfigJson(R"({"weight_config": {"lm_head": {"bitz": 8}}})"),
      StatusIs(kInvalid, AllOf(StartsWith("weight_config[\"lm_head\"]: unknown key \"bitz\""),
                               HasSubstr("did you mean \"bits\""))));
  EXPECT_THAT(
      ParseSessionConfigJson(R"({"weight_config": {"lm_head": {"bits": "8"}}})"),
      StatusIs(kInvalid, StartsWith("weight_config[\"lm_head\"]: bits must be an integer")));
  EXPECT_THAT(ParseSessionConfigJson(R"({"weight_config": {"lm_head": {"bits": 9}}})"),
              StatusIs(kInvalid,
                       AllOf(StartsWith("weight_config[\"lm_head\"]: bits"), HasSubstr("got 9"))));
  EXPECT_THAT(ParseSessionConfigJson(R"({"weight_config": {"re:((": {"bits": 8}}})"),
              StatusIs(kInvalid, StartsWith("weight_config[\"re:((\"]: invalid regex")));
  EXPECT_THAT(ParseSessionConfigJson(R"({"weight_config": {"lm_head": 8}})"),
              StatusIs(kInvalid, StartsWith("weight_config[\"lm_head\"]: expected a JSON object")));
  EXPECT_THAT(ParseSessionConfigJson(R"({"weight_config": {"": {}}})"),
              StatusIs(kInvalid, HasSubstr("key is empty")));
  EXPECT_THAT(
      ParseSessionConfigJson(R"({"weight_config": {"lm_head": {"weight_config": {}}}})"),
      StatusIs(kInvalid, StartsWith("weight_config[\"lm_head\"]: unknown key \"weight_config\"")));
}

TEST(ParseSessionConfigJsonTest, TopLevelErrors) {
  EXPECT_THAT(ParseSessionConfigJson(R"({"weight_cfg": {}})"),
              StatusIs(kInvalid, AllOf(StartsWith("config: unknown key \"weight_cfg\""),
                                       HasSubstr("did you mean \"weight_config\""),
                                       HasSubstr("weight_config"))));
  EXPECT_THAT(ParseSessionConfigJson(R"({"weight_config": []})"),
              StatusIs(kInvalid, HasSubstr("config: weight_config must be an object")));
  EXPECT_THAT(ParseSessionConfigJson(R"({"group_size": 0})"),
              StatusIs(kInvalid, StartsWith("config: group_size")));
  EXPECT_THAT(ParseSessionConfigJson(R"({"bits": 4.5})"),
              StatusIs(kInvalid, HasSubstr("config: bits must be an integer, got 4.5")));
  EXPECT_THAT(ParseSessionConfigJson("[]"),
              StatusIs(kInvalid, HasSubstr("expected a JSON object")));
  EXPECT_THAT(ParseSessionConfigJson(R"({"weight_config": {)"),
              StatusIs(kInvalid, HasSubstr("config: invalid JSON")));
}

TEST(ParseSessionConfigJsonTest, DuplicateWeightConfigKeysAreRejected) {
  // nlohmann would keep only the last; a silently dropped entry is never acceptable.
  EXPECT_THAT(ParseSessionConfigJson(
                  R"({"weight_config": {"lm_head": {"bits": 8}, "lm_head": {"bits": 2}}})"),
              StatusIs(kInvalid, HasSubstr("duplicate key \"lm_head\" in \"weight_config\"")));
  EXPECT_THAT(ParseSessionConfigJson(R"({"weight_config": {"a": {"bits": 8, "bits": 2}}})"),
              StatusIs(kInvalid, HasSubstr("duplicate key \"bits\" in \"weight_config\".\"a\"")));
}

}  // namespace
}  // namespace rtnq
