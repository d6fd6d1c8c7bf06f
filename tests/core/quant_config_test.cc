#include "core/config/quant_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "core/config/config_json.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

// Parses `json` and applies the patch to the defaults.
QuantConfig ParseOnDefaults(const std::string& json) {
  absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson(json);
  EXPECT_THAT(p, IsOk()) << json;
  QuantConfig cfg;
  if (p.ok()) p->ApplyTo(cfg);
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// Parsing every key.

TEST(ParseConfigPatchJsonTest, EmptyObjectIsEmptyPatch) {
  absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson("{}");
  ASSERT_THAT(p, IsOk());
  EXPECT_TRUE(p->empty());
}

TEST(ParseConfigPatchJsonTest, ParsesEveryKey) {
  absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson(R"({
    "bits": 3, "group_size": 128, "scheme": "sym", "quantile": 0.875, "dtype": "int",
    "enable_full_range": true, "enable_mse_search": true, "group_dim": 0,
    "double_quant_dtype": "int", "double_quant_bits": 6, "double_quant_scheme": "asym",
    "double_quant_group_size": 64})");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->bits, 3);
  EXPECT_EQ(p->group_size, 128);
  EXPECT_EQ(p->scheme, Scheme::kSym);
  EXPECT_EQ(p->quantile, 0.875);
  EXPECT_EQ(p->dtype, QuantDtype::kInt);
  EXPECT_EQ(p->enable_full_range, true);
  EXPECT_EQ(p->enable_mse_search, true);
  EXPECT_EQ(p->group_dim, 0);
  EXPECT_EQ(p->double_quant_dtype, QuantDtype::kInt);
  EXPECT_EQ(p->double_quant_bits, 6);
  EXPECT_EQ(p->double_quant_scheme, Scheme::kAsym);
  EXPECT_EQ(p->double_quant_group_size, 64);
}

TEST(ParseConfigPatchJsonTest, SetsOnlyGivenFields) {
  absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson(R"({"group_size": -1})");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->group_size, -1);
  EXPECT_FALSE(p->bits.has_value());
  EXPECT_FALSE(p->dtype.has_value());
  EXPECT_FALSE(p->scheme.has_value());
  EXPECT_FALSE(p->quantile.has_value());
  EXPECT_FALSE(p->double_quant_dtype.has_value());
  QuantConfig expected;
  expected.group_size = -1;
  EXPECT_EQ(ParseOnDefaults(R"({"group_size": -1})"), expected);
}

TEST(ParseConfigPatchJsonTest, FalseBooleansAreSet) {
  absl::StatusOr<QuantConfigPatch> p =
      ParseConfigPatchJson(R"({"enable_full_range": false, "enable_mse_search": false})");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->enable_full_range, false);
  EXPECT_EQ(p->enable_mse_search, false);
}

TEST(ParseConfigPatchJsonTest, QuantileAcceptsIntegerNumber) {
  absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson(R"({"quantile": 1})");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->quantile, 1.0);
}

TEST(ParseConfigPatchJsonTest, EveryDtypeName) {
  struct Case {
    const char* name;
    QuantDtype dtype;
  };
  for (const Case& c : {Case{"int", QuantDtype::kInt}, Case{"nf4", QuantDtype::kNf4},
                        Case{"fp4", QuantDtype::kFp4}, Case{"fp4_e2m1_bnb", QuantDtype::kFp4},
                        Case{"fp4_e2m1", QuantDtype::kFp4E2M1}, Case{"fp32", QuantDtype::kFp32}}) {
    absl::StatusOr<QuantConfigPatch> p =
        ParseConfigPatchJson(std::string(R"({"dtype": ")") + c.name + "\"}");
    ASSERT_THAT(p, IsOk()) << c.name;
    EXPECT_EQ(p->dtype, c.dtype) << c.name;
    EXPECT_FALSE(p->bits.has_value()) << c.name;
  }
}

TEST(ParseConfigPatchJsonTest, BitsAndNumBitsAreAliases) {
  absl::StatusOr<QuantConfigPatch> a = ParseConfigPatchJson(R"({"bits": 8})");
  absl::StatusOr<QuantConfigPatch> b = ParseConfigPatchJson(R"({"num_bits": 8})");
  absl::StatusOr<QuantConfigPatch> both = ParseConfigPatchJson(R"({"num_bits": 8, "bits": 8})");
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  ASSERT_THAT(both, IsOk());
  EXPECT_EQ(a->bits, 8);
  EXPECT_EQ(b->bits, 8);
  EXPECT_EQ(both->bits, 8);
}

TEST(ParseConfigPatchJsonTest, BitsAndNumBitsConflict) {
  EXPECT_THAT(ParseConfigPatchJson(R"({"num_bits": 4, "bits": 8})"),
              StatusIs(kInvalid, AllOf(StartsWith("config: "), HasSubstr("num_bits 4"),
                                       HasSubstr("bits 8"), HasSubstr("disagree"))));
}

TEST(ParseConfigPatchJsonTest, IntNDtypeSetsBits) {
  for (int n = 1; n <= 8; ++n) {
    absl::StatusOr<QuantConfigPatch> p =
        ParseConfigPatchJson("{\"dtype\": \"int" + std::to_string(n) + "\"}");
    ASSERT_THAT(p, IsOk()) << n;
    EXPECT_EQ(p->dtype, QuantDtype::kInt);
    EXPECT_EQ(p->bits, n);
  }
  absl::StatusOr<QuantConfigPatch> agree = ParseConfigPatchJson(R"({"dtype": "int8", "bits": 8})");
  ASSERT_THAT(agree, IsOk());
  EXPECT_EQ(agree->bits, 8);
}

TEST(ParseConfigPatchJsonTest, IntNDtypeConflictsWithBits) {
  EXPECT_THAT(ParseConfigPatchJson(R"({"dtype": "int8", "num_bits": 4})"),
              StatusIs(kInvalid, AllOf(HasSubstr("int8"), HasSubstr("num_bits 4"))));
  EXPECT_THAT(ParseConfigPatchJson(R"({"bits": 4, "dtype": "int3"})"),
              StatusIs(kInvalid, AllOf(HasSubstr("bits 4"), HasSubstr("int3"))));
}

TEST(ParseConfigPatchJsonTest, IntNOutOfRangeFailsValidation) {
  absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson(R"({"dtype": "int16"})");
  ASSERT_THAT(p, IsOk());  // a well-formed name; the range is ValidateConfig's
  QuantConfig cfg;
  p->ApplyTo(cfg);
  EXPECT_THAT(ValidateConfig(cfg), StatusIs(kInvalid, HasSubstr("got 16")));
}

TEST(ParseConfigPatchJsonTest, DoubleQuantIntNSetsDoubleQuantBits) {
  absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson(R"({"double_quant_dtype": "int6"})");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->double_quant_dtype, QuantDtype::kInt);
  EXPECT_EQ(p->double_quant_bits, 6);
  EXPECT_FALSE(p->bits.has_value());
  EXPECT_THAT(ParseConfigPatchJson(R"({"double_quant_dtype": "int6", "double_quant_bits": 8})"),
              StatusIs(kInvalid, AllOf(HasSubstr("double_quant_bits 8"), HasSubstr("int6"))));
}

TEST(ParseConfigPatchJsonTest, UnknownDtypeAndScheme) {
  EXPECT_THAT(ParseConfigPatchJson(R"({"dtype": "fp8"})"),
              StatusIs(kInvalid, AllOf(StartsWith("config: "), HasSubstr("dtype \"fp8\""),
                                       HasSubstr("unknown"), HasSubstr("nf4"))));
  EXPECT_THAT(ParseConfigPatchJson(R"({"dtype": "intx"})"),
              StatusIs(kInvalid, HasSubstr("dtype \"intx\"")));
  EXPECT_THAT(ParseConfigPatchJson(R"({"dtype": "INT"})"),
              StatusIs(kInvalid, HasSubstr("dtype \"INT\"")));
  EXPECT_THAT(
      ParseConfigPatchJson(R"({"scheme": "symmetric"})"),
      StatusIs(kInvalid, AllOf(HasSubstr("scheme \"symmetric\""), HasSubstr("sym or asym"))));
  EXPECT_THAT(ParseConfigPatchJson(R"({"double_quant_scheme": "x"})"),
              StatusIs(kInvalid, HasSubstr("double_quant_scheme \"x\"")));
  EXPECT_THAT(ParseConfigPatchJson(R"({"double_quant_dtype": "float"})"),
              StatusIs(kInvalid, HasSubstr("double_quant_dtype \"float\"")));
}

TEST(ParseConfigPatchJsonTest, DoubleQuantNf4ParsesButFailsValidation) {
  QuantConfig cfg = ParseOnDefaults(R"({"double_quant_dtype": "nf4"})");
  EXPECT_THAT(ValidateConfig(cfg),
              StatusIs(kInvalid, AllOf(HasSubstr("double_quant_dtype"), HasSubstr("nf4"))));
}

// ---------------------------------------------------------------------------------------------
// Presets.

TEST(ParseConfigPatchJsonTest, PresetBnbNf4) {
  QuantConfig cfg = ParseOnDefaults(R"({"preset": "BNB_NF4"})");
  EXPECT_EQ(cfg.dtype, QuantDtype::kNf4);
  EXPECT_EQ(cfg.bits, 4);
  EXPECT_EQ(cfg.group_size, 32);
  EXPECT_EQ(cfg.double_quant_dtype, QuantDtype::kInt);
  EXPECT_EQ(cfg.double_quant_bits, 8);
  EXPECT_EQ(cfg.double_quant_scheme, Scheme::kAsym);
  EXPECT_EQ(cfg.double_quant_group_size, 256);
  EXPECT_THAT(ValidateConfig(cfg), IsOk());
}

TEST(ParseConfigPatchJsonTest, PresetGgmlQ4K) {
  QuantConfig cfg = ParseOnDefaults(R"({"preset": "ggml_type_q4_k"})");  // case-insensitive
  EXPECT_EQ(cfg.dtype, QuantDtype::kInt);
  EXPECT_EQ(cfg.bits, 4);
  EXPECT_EQ(cfg.group_size, 32);
  EXPECT_EQ(cfg.scheme, Scheme::kAsym);
  EXPECT_EQ(cfg.double_quant_dtype, QuantDtype::kInt);
  EXPECT_EQ(cfg.double_quant_bits, 6);
  EXPECT_EQ(cfg.double_quant_scheme, Scheme::kSym);
  EXPECT_EQ(cfg.double_quant_group_size, 8);
  EXPECT_THAT(ValidateConfig(cfg), IsOk());
}

TEST(ParseConfigPatchJsonTest, ExplicitKeysOverridePreset) {
  // Keys listed before the preset still win: the preset is always applied first.
  QuantConfig cfg = ParseOnDefaults(
      R"({"group_size": 64, "preset": "BNB_NF4", "double_quant_bits": 4, "quantile": 0.5})");
  EXPECT_EQ(cfg.dtype, QuantDtype::kNf4);
  EXPECT_EQ(cfg.group_size, 64);
  EXPECT_EQ(cfg.double_quant_bits, 4);
  EXPECT_EQ(cfg.double_quant_group_size, 256);
  EXPECT_EQ(cfg.quantile, 0.5);

  QuantConfig q4k = ParseOnDefaults(
      R"({"preset": "GGML_TYPE_Q4_K", "dtype": "int8", "double_quant_scheme": "asym"})");
  EXPECT_EQ(q4k.dtype, QuantDtype::kInt);
  EXPECT_EQ(q4k.bits, 8);
  EXPECT_EQ(q4k.double_quant_bits, 6);
  EXPECT_EQ(q4k.double_quant_scheme, Scheme::kAsym);
  EXPECT_EQ(q4k.double_quant_group_size, 8);
}

TEST(ParseConfigPatchJsonTest, UnknownPreset) {
  EXPECT_THAT(ParseConfigPatchJson(R"({"preset": "GPTQ"})"),
              StatusIs(kInvalid, AllOf(StartsWith("config: "), HasSubstr("preset \"GPTQ\""),
                                       HasSubstr("BNB_NF4"))));
  EXPECT_THAT(ParseConfigPatchJson(R"({"preset": 1})"),
              StatusIs(kInvalid, HasSubstr("preset must be a string, got 1")));
}

// ---------------------------------------------------------------------------------------------
// Unknown keys, type errors, bad JSON.

TEST(ParseConfigPatchJsonTest, UnknownKeyNamesKeyAndListsAccepted) {
  EXPECT_THAT(ParseConfigPatchJson(R"({"group_sz": 32})"),
              StatusIs(kInvalid, AllOf(StartsWith("config: unknown key \"group_sz\""),
                                       HasSubstr("did you mean \"group_size\"?"),
                                       HasSubstr("accepted keys: bits, num_bits, group_size"),
                                       HasSubstr("double_quant_group_size"), HasSubstr("preset"))));
  EXPECT_THAT(ParseConfigPatchJson(R"({"zzzzzzzzzzzzzzzzzzzzzz": 1})"),
              StatusIs(kInvalid, AllOf(HasSubstr("unknown key \"zzzzzzzzzzzzzzzzzzzzzz\""),
                                       ::testing::Not(HasSubstr("did you mean")))));
  // Keys are case-sensitive: no silent fallback for a wrongly cased key either.
  EXPECT_THAT(ParseConfigPatchJson(R"({"Bits": 4})"),
              StatusIs(kInvalid, HasSubstr("unknown key \"Bits\"")));
  EXPECT_THAT(ParseConfigPatchJson(R"({"weight_config": {}})"),
              StatusIs(kInvalid, HasSubstr("unknown key \"weight_config\"")));
}

TEST(ParseConfigPatchJsonTest, WherePrefixesMessages) {
  EXPECT_THAT(ParseConfigPatchJson(R"({"bits": "4"})", "weight_config[\"lm_head\"]"),
              StatusIs(kInvalid, StartsWith("weight_config[\"lm_head\"]: bits must be")));
}

TEST(ParseConfigPatchJsonTest, TypeErrorsNameKeyAndValue) {
  struct Case {
    const char* json;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"bits": "4"})", "bits must be an integer, got \"4\""},
           Case{R"({"bits": 4.5})", "bits must be an integer, got 4.5"},
           Case{R"({"bits": 4.0})", "bits must be an integer, got 4.0"},
           Case{R"({"num_bits": null})", "num_bits must be an integer, got null"},
           Case{R"({"bits": 10000000000})", "bits 10000000000 is out of range"},
           Case{R"({"group_size": true})", "group_size must be an integer, got true"},
           Case{R"({"group_size": [32]})", "group_size must be an integer, got [32]"},
           Case{R"({"group_size": 18446744073709551615})",
                "group_size 18446744073709551615 is out of range"},
           Case{R"({"scheme": 1})", "scheme must be a string, got 1"},
           Case{R"({"quantile": "0.9"})", "quantile must be a number, got \"0.9\""},
           Case{R"({"quantile": false})", "quantile must be a number, got false"},
           Case{R"({"dtype": 4})", "dtype must be a string, got 4"},
           Case{R"({"enable_full_range": 1})", "enable_full_range must be true or false, got 1"},
           Case{R"({"enable_mse_search": "true"})",
                "enable_mse_search must be true or false, got \"true\""},
           Case{R"({"group_dim": 0.0})", "group_dim must be an integer, got 0.0"},
           Case{R"({"double_quant_dtype": {}})", "double_quant_dtype must be a string, got {}"},
           Case{R"({"double_quant_bits": "8"})", "double_quant_bits must be an integer, got \"8\""},
           Case{R"({"double_quant_scheme": null})",
                "double_quant_scheme must be a string, got null"},
           Case{R"({"double_quant_group_size": 2.5})",
                "double_quant_group_size must be an integer, got 2.5"},
       }) {
    EXPECT_THAT(ParseConfigPatchJson(c.json),
                StatusIs(kInvalid, AllOf(StartsWith("config: "), HasSubstr(c.message))))
        << c.json;
  }
}

TEST(ParseConfigPatchJsonTest, LongValuesAreTruncatedInMessages) {
  const std::string long_string(500, 'x');
  absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson("{\"bits\": \"" + long_string + "\"}");
  ASSERT_THAT(p, StatusIs(kInvalid, HasSubstr("...")));
  EXPECT_LT(p.status().message().size(), 120u);
}

TEST(ParseConfigPatchJsonTest, InvalidJsonReportsPosition) {
  EXPECT_THAT(ParseConfigPatchJson(R"({"bits": 4,})"),
              StatusIs(kInvalid, AllOf(StartsWith("config: invalid JSON: "),
                                       HasSubstr("parse error at line 1, column"))));
  EXPECT_THAT(ParseConfigPatchJson(""), StatusIs(kInvalid, HasSubstr("invalid JSON")));
  EXPECT_THAT(ParseConfigPatchJson("{\"bits\": 4}\n{"), StatusIs(kInvalid, HasSubstr("line 2")));
  EXPECT_THAT(ParseConfigPatchJson(R"({"quantile": NaN})"),
              StatusIs(kInvalid, HasSubstr("invalid JSON")));
}

TEST(ParseConfigPatchJsonTest, NonObjectIsRejected) {
  EXPECT_THAT(ParseConfigPatchJson("[1, 2]"),
              StatusIs(kInvalid, HasSubstr("config: expected a JSON object, got [1,2]")));
  EXPECT_THAT(ParseConfigPatchJson("4"), StatusIs(kInvalid, HasSubstr("expected a JSON object")));
}

TEST(ParseConfigPatchJsonTest, DuplicateKeysAreRejected) {
  EXPECT_THAT(ParseConfigPatchJson(R"({"bits": 4, "bits": 8})"),
              StatusIs(kInvalid, HasSubstr("config: duplicate key \"bits\"")));
  // The same key in sibling objects is fine.
  EXPECT_THAT(ParseStrictJson(R"({"a": {"x": 1}, "b": {"x": 2}})", "t"), IsOk());
  EXPECT_THAT(ParseStrictJson(R"({"a": [{"x": 1}, {"x": 2, "x": 3}]})", "t"),
              StatusIs(kInvalid, HasSubstr("t: duplicate key \"x\" in \"a\"")));
}

TEST(PatchFromJsonTest, AcceptsBothJsonFlavoursAndSkipKeys) {
  nlohmann::json plain = {{"bits", 2}, {"extra", 1}};
  EXPECT_THAT(PatchFromJson(plain, "x"), StatusIs(kInvalid, HasSubstr("x: unknown key \"extra\"")));
  constexpr std::string_view kSkip[] = {"extra"};
  absl::StatusOr<QuantConfigPatch> p = PatchFromJson(plain, "x", kSkip);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->bits, 2);
  EXPECT_THAT(
      PatchFromJson(nlohmann::json{{"extr", 1}}, "x", kSkip),
      StatusIs(kInvalid, AllOf(HasSubstr("did you mean \"extra\""), HasSubstr("preset, extra"))));
  nlohmann::ordered_json ordered = {{"scheme", "sym"}};
  absl::StatusOr<QuantConfigPatch> q = PatchFromJson(ordered, "y");
  ASSERT_THAT(q, IsOk());
  EXPECT_EQ(q->scheme, Scheme::kSym);
}

TEST(PatchFromJsonTest, InvalidUtf8InValueDoesNotThrow) {
  nlohmann::json bad = {{"dtype", std::string("\xff\xfe")}};
  EXPECT_THAT(PatchFromJson(bad, "x"), StatusIs(kInvalid, HasSubstr("dtype")));
  nlohmann::json bad_type = {{"bits", std::string("\xff")}};
  EXPECT_THAT(PatchFromJson(bad_type, "x"), StatusIs(kInvalid, HasSubstr("bits must be")));
}

// ---------------------------------------------------------------------------------------------
// ValidateConfig: every invalid value is named with its field and value.

TEST(ValidateConfigTest, DefaultsAndPresetsAreValid) {
  EXPECT_THAT(ValidateConfig(QuantConfig{}), IsOk());
  for (const char* preset : {"BNB_NF4", "GGML_TYPE_Q4_K"}) {
    QuantConfig cfg;
    absl::StatusOr<QuantConfigPatch> p = PresetPatch(preset);
    ASSERT_THAT(p, IsOk());
    p->ApplyTo(cfg);
    EXPECT_THAT(ValidateConfig(cfg), IsOk()) << preset;
  }
}

TEST(ValidateConfigTest, BoundaryValuesAreValid) {
  for (int bits = 1; bits <= 8; ++bits) {
    QuantConfig cfg;
    cfg.bits = bits;
    EXPECT_THAT(ValidateConfig(cfg), IsOk()) << bits;
    cfg.scheme = Scheme::kSym;
    EXPECT_THAT(ValidateConfig(cfg), IsOk()) << bits;
  }
  QuantConfig cfg;
  cfg.group_size = -1;
  cfg.quantile = 1e-6;
  cfg.group_dim = 0;
  EXPECT_THAT(ValidateConfig(cfg), IsOk());
  cfg.group_size = 1;
  cfg.quantile = 1.0;
  EXPECT_THAT(ValidateConfig(cfg), IsOk());
  cfg.scheme = Scheme::kSym;
  cfg.enable_full_range = true;
  cfg.bits = 2;
  EXPECT_THAT(ValidateConfig(cfg), IsOk());
  cfg.bits = 1;
  cfg.scheme = Scheme::kAsym;  // full range is a sym-only notion: harmless with asym
  EXPECT_THAT(ValidateConfig(cfg), IsOk());
}

TEST(ValidateConfigTest, Fp32SkipsEveryOtherCheck) {
  QuantConfig cfg;
  cfg.dtype = QuantDtype::kFp32;
  cfg.bits = 0;
  cfg.group_size = 0;
  cfg.quantile = -1;
  EXPECT_THAT(ValidateConfig(cfg), IsOk());
}

struct InvalidCase {
  const char* name;
  void (*mutate)(QuantConfig&);
  std::vector<std::string> substrings;
};

TEST(ValidateConfigTest, InvalidValuesNameFieldAndValue) {
  const std::vector<InvalidCase> cases = {
      {"bits 0", [](QuantConfig& c) { c.bits = 0; }, {"bits", "got 0"}},
      {"bits 9", [](QuantConfig& c) { c.bits = 9; }, {"bits", "1..8", "got 9"}},
      {"bits -1", [](QuantConfig& c) { c.bits = -1; }, {"bits", "got -1"}},
      {"nf4 bits 3",
       [](QuantConfig& c) {
         c.dtype = QuantDtype::kNf4;
         c.bits = 3;
       },
       {"bits must be 4", "nf4", "got 3"}},
      {"fp4 bits 8",
       [](QuantConfig& c) {
         c.dtype = QuantDtype::kFp4;
         c.bits = 8;
       },
       {"bits must be 4", "fp4", "got 8"}},
      {"fp4_e2m1 bits 2",
       [](QuantConfig& c) {
         c.dtype = QuantDtype::kFp4E2M1;
         c.bits = 2;
       },
       {"bits must be 4", "fp4_e2m1", "got 2"}},
      {"group_size 0", [](QuantConfig& c) { c.group_size = 0; }, {"group_size", "got 0"}},
      {"group_size -2", [](QuantConfig& c) { c.group_size = -2; }, {"group_size", "got -2"}},
      {"quantile 0", [](QuantConfig& c) { c.quantile = 0; }, {"quantile", "got 0"}},
      {"quantile -0.1", [](QuantConfig& c) { c.quantile = -0.1; }, {"quantile", "got -0.1"}},
      {"quantile 1.5", [](QuantConfig& c) { c.quantile = 1.5; }, {"quantile", "got 1.5"}},
      {"quantile NaN", [](QuantConfig& c) { c.quantile = NAN; }, {"quantile", "nan"}},
      {"quantile inf", [](QuantConfig& c) { c.quantile = INFINITY; }, {"quantile", "inf"}},
      {"quantile float32 underflow",
       [](QuantConfig& c) { c.quantile = 1e-60; },
       {"quantile", "1e-60", "float32"}},
      {"group_dim 2", [](QuantConfig& c) { c.group_dim = 2; }, {"group_dim", "got 2"}},
      {"group_dim -1", [](QuantConfig& c) { c.group_dim = -1; }, {"group_dim", "got -1"}},
      {"unknown dtype",
       [](QuantConfig& c) { c.dtype = static_cast<QuantDtype>(42); },
       {"dtype 42", "unknown"}},
      {"unknown scheme",
       [](QuantConfig& c) { c.scheme = static_cast<Scheme>(7); },
       {"scheme 7", "unknown"}},
      {"unknown double_quant_dtype",
       [](QuantConfig& c) { c.double_quant_dtype = static_cast<QuantDtype>(9); },
       {"double_quant_dtype 9", "unknown"}},
      {"unknown double_quant_scheme",
       [](QuantConfig& c) { c.double_quant_scheme = static_cast<Scheme>(5); },
       {"double_quant_scheme 5", "unknown"}},
      {"sym 1-bit full range",
       [](QuantConfig& c) {
         c.bits = 1;
         c.scheme = Scheme::kSym;
         c.enable_full_range = true;
       },
       {"enable_full_range", "bits 1", "sym"}},
      {"double_quant_dtype nf4",
       [](QuantConfig& c) { c.double_quant_dtype = QuantDtype::kNf4; },
       {"double_quant_dtype", "nf4"}},
      {"double_quant_bits 0",
       [](QuantConfig& c) {
         c.double_quant_dtype = QuantDtype::kInt;
         c.double_quant_bits = 0;
       },
       {"double_quant_bits", "got 0"}},
      {"double_quant_bits 9",
       [](QuantConfig& c) {
         c.double_quant_dtype = QuantDtype::kInt;
         c.double_quant_bits = 9;
       },
       {"double_quant_bits", "got 9"}},
      {"double_quant_group_size 0",
       [](QuantConfig& c) {
         c.double_quant_dtype = QuantDtype::kInt;
         c.double_quant_group_size = 0;
       },
       {"double_quant_group_size", "got 0"}},
      {"double_quant_group_size -5",
       [](QuantConfig& c) {
         c.double_quant_dtype = QuantDtype::kInt;
         c.double_quant_group_size = -5;
       },
       {"double_quant_group_size", "got -5"}},
  };
  for (const InvalidCase& c : cases) {
    QuantConfig cfg;
    c.mutate(cfg);
    const absl::Status s = ValidateConfig(cfg);
    EXPECT_EQ(s.code(), kInvalid) << c.name << ": " << s;
    for (const std::string& sub : c.substrings) {
      EXPECT_THAT(std::string(s.message()), HasSubstr(sub)) << c.name;
    }
  }
}

TEST(ValidateConfigTest, DoubleQuantFieldsIgnoredWhenOff) {
  QuantConfig cfg;
  cfg.double_quant_dtype = QuantDtype::kFp32;
  cfg.double_quant_bits = 0;
  cfg.double_quant_group_size = 0;
  EXPECT_THAT(ValidateConfig(cfg), IsOk());
}

TEST(ValidateConfigTest, ParsedInvalidValuesFailValidation) {
  // The parser accepts any well-typed value; the merged config is what gets range-checked.
  struct Case {
    const char* json;
    const char* message;
  };
  for (const Case& c :
       {Case{R"({"bits": 0})", "got 0"}, Case{R"({"num_bits": 9})", "got 9"},
        Case{R"({"dtype": "nf4", "bits": 3})", "got 3"}, Case{R"({"group_size": 0})", "group_size"},
        Case{R"({"group_size": -2})", "got -2"}, Case{R"({"quantile": 0})", "quantile"},
        Case{R"({"quantile": -0.1})", "got -0.1"}, Case{R"({"quantile": 1.5})", "got 1.5"},
        Case{R"({"group_dim": 2})", "group_dim"},
        Case{R"({"bits": 1, "scheme": "sym", "enable_full_range": true})", "enable_full_range"},
        Case{R"({"double_quant_dtype": "int", "double_quant_bits": 0})", "double_quant_bits"},
        Case{R"({"double_quant_dtype": "int", "double_quant_bits": 9})", "double_quant_bits"},
        Case{R"({"double_quant_dtype": "int", "double_quant_group_size": 0})",
             "double_quant_group_size"}}) {
    QuantConfig cfg = ParseOnDefaults(c.json);
    EXPECT_THAT(ValidateConfig(cfg), StatusIs(kInvalid, HasSubstr(c.message))) << c.json;
  }
}

// ---------------------------------------------------------------------------------------------
// ConfigToJson.

TEST(ConfigToJsonTest, UsesSpecKeyNames) {
  const nlohmann::json j = nlohmann::json::parse(ConfigToJson(QuantConfig{}));
  const nlohmann::json expected = {
      {"bits", 4},
      {"group_size", 32},
      {"scheme", "asym"},
      {"quantile", 1.0},
      {"dtype", "int"},
      {"enable_full_range", false},
      {"enable_mse_search", false},
      {"group_dim", 1},
      {"double_quant_dtype", "fp32"},
      {"double_quant_bits", 8},
      {"double_quant_scheme", "sym"},
      {"double_quant_group_size", 256},
  };
  EXPECT_EQ(j, expected);
}

TEST(ConfigToJsonTest, RoundTrips) {
  std::vector<QuantConfig> configs(6);
  configs[1].bits = 3;
  configs[1].scheme = Scheme::kSym;
  configs[1].enable_full_range = true;
  configs[1].group_size = -1;
  configs[1].quantile = 0.1;  // not exactly representable: must survive the text form
  configs[2].dtype = QuantDtype::kNf4;
  configs[2].double_quant_dtype = QuantDtype::kInt;
  configs[2].double_quant_scheme = Scheme::kAsym;
  configs[2].double_quant_group_size = 7;
  configs[3].dtype = QuantDtype::kFp4;
  configs[3].group_dim = 0;
  configs[3].enable_mse_search = true;
  configs[3].quantile = 0.9049999713897705;
  configs[4].dtype = QuantDtype::kFp4E2M1;
  configs[4].double_quant_bits = 2;
  configs[5].dtype = QuantDtype::kFp32;
  configs[5].group_size = 1LL << 40;
  for (const QuantConfig& cfg : configs) {
    const std::string json = ConfigToJson(cfg);
    absl::StatusOr<QuantConfigPatch> p = ParseConfigPatchJson(json);
    ASSERT_THAT(p, IsOk()) << json;
    QuantConfig back;
    p->ApplyTo(back);
    EXPECT_EQ(back, cfg) << json;
    // Every field is present, so applying on top of anything gives the same config.
    QuantConfig other;
    other.bits = 7;
    other.dtype = QuantDtype::kNf4;
    other.quantile = 0.3;
    p->ApplyTo(other);
    EXPECT_EQ(other, cfg) << json;
  }
}

TEST(ConfigSummaryTest, Summaries) {
  EXPECT_EQ(ConfigSummary(QuantConfig{}), "int4 asym g32");
  QuantConfig fp32;
  fp32.dtype = QuantDtype::kFp32;
  EXPECT_EQ(ConfigSummary(fp32), "fp32 (unquantized)");
}

}  // namespace
}  // namespace rtnq
