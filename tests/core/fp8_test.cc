// FP8 decoding against tables written here from the format definitions (OCP 8-bit floating point:
// E4M3 without infinities, E5M2 IEEE-like, E8M0 exponents), and block-scale dequantization
// against a plain loop over the definition.
#include "core/fp8.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/io/fp8_source.h"
#include "core/io/safetensors_header.h"
#include "core/tensor_text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// value = (-1)^S * 2^(E - bias) * (1 + M / 2^m) for normal codes, (-1)^S * 2^(1 - bias) * M / 2^m
// for E = 0, in double arithmetic (a different route from the decoder's bit assembly).
double Minifloat(int code, int e, int m, int bias) {
  const int sign = (code >> 7) & 1;
  const int exp = (code >> m) & ((1 << e) - 1);
  const int mant = code & ((1 << m) - 1);
  const double frac = static_cast<double>(mant) / static_cast<double>(1 << m);
  const double mag =
      exp == 0 ? std::pow(2.0, 1 - bias) * frac : std::pow(2.0, exp - bias) * (1.0 + frac);
  return sign ? -mag : mag;
}

std::vector<double> E4M3Table() {
  std::vector<double> t(256);
  for (int c = 0; c < 256; ++c) {
    // S.1111.111 is NaN; the rest of exponent 15 is finite (256..448): no infinities.
    t[c] = (c & 0x7f) == 0x7f ? kNaN : Minifloat(c, 4, 3, 7);
  }
  return t;
}

std::vector<double> E5M2Table() {
  std::vector<double> t(256);
  for (int c = 0; c < 256; ++c) {
    const int exp = (c >> 2) & 31, mant = c & 3;
    if (exp == 31) {
      t[c] = mant != 0 ? kNaN : ((c & 0x80) ? -kInf : kInf);
    } else {
      t[c] = Minifloat(c, 5, 2, 15);
    }
  }
  return t;
}

std::vector<double> E8M0Table() {
  std::vector<double> t(256);
  for (int c = 0; c < 256; ++c) t[c] = c == 255 ? kNaN : std::pow(2.0, c - 127);
  return t;
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

void ExpectTable(float (*decode)(uint8_t), const std::vector<double>& table, const char* what) {
  for (int c = 0; c < 256; ++c) {
    const float got = decode(static_cast<uint8_t>(c));
    const double want = table[c];
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << what << " code 0x" << std::hex << c;
      continue;
    }
    // Exact, sign of zero included.
    EXPECT_EQ(Bits(got), Bits(static_cast<float>(want)))
        << what << " code 0x" << std::hex << c << ": " << got << " vs " << want;
    EXPECT_EQ(static_cast<double>(got), want) << what << " code 0x" << std::hex << c;
  }
}

TEST(Fp8Decode, E4M3AllCodes) {
  ExpectTable(F8E4M3ToFloat, E4M3Table(), "E4M3");
  // Landmarks from the format definition.
  EXPECT_EQ(F8E4M3ToFloat(0x38), 1.0f);
  EXPECT_EQ(F8E4M3ToFloat(0x7e), 448.0f);
  EXPECT_EQ(F8E4M3ToFloat(0xfe), -448.0f);
  EXPECT_EQ(F8E4M3ToFloat(0x78), 256.0f);
  EXPECT_EQ(F8E4M3ToFloat(0x01), 0.001953125f);  // 2^-9, smallest subnormal
  EXPECT_EQ(F8E4M3ToFloat(0x07), 0.013671875f);  // 7/8 * 2^-6, largest subnormal
  EXPECT_EQ(F8E4M3ToFloat(0x08), 0.015625f);     // 2^-6, smallest normal
  EXPECT_EQ(Bits(F8E4M3ToFloat(0x80)), 0x80000000u);
  EXPECT_TRUE(std::isnan(F8E4M3ToFloat(0x7f)));
  EXPECT_TRUE(std::isnan(F8E4M3ToFloat(0xff)));
  int nans = 0;
  for (int c = 0; c < 256; ++c) nans += std::isnan(F8E4M3ToFloat(static_cast<uint8_t>(c)));
  EXPECT_EQ(nans, 2);
}

TEST(Fp8Decode, E5M2AllCodes) {
  ExpectTable(F8E5M2ToFloat, E5M2Table(), "E5M2");
  EXPECT_EQ(F8E5M2ToFloat(0x3c), 1.0f);
  EXPECT_EQ(F8E5M2ToFloat(0x7b), 57344.0f);
  EXPECT_EQ(F8E5M2ToFloat(0x01), 0x1p-16f);
  EXPECT_EQ(F8E5M2ToFloat(0x04), 0x1p-14f);
  EXPECT_EQ(F8E5M2ToFloat(0x7c), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F8E5M2ToFloat(0xfc), -std::numeric_limits<float>::infinity());
  int nans = 0;
  for (int c = 0; c < 256; ++c) nans += std::isnan(F8E5M2ToFloat(static_cast<uint8_t>(c)));
  EXPECT_EQ(nans, 6);  // 0x7d-0x7f, 0xfd-0xff
}

TEST(Fp8Decode, E8M0AllCodes) {
  ExpectTable(F8E8M0ToFloat, E8M0Table(), "E8M0");
  EXPECT_EQ(F8E8M0ToFloat(127), 1.0f);
  EXPECT_EQ(F8E8M0ToFloat(0), 0x1p-127f);
  EXPECT_EQ(F8E8M0ToFloat(254), 0x1p127f);
}

TEST(Fp8Encode, E4M3RoundsToNearestEvenAndSaturates) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    EXPECT_EQ(FloatToF8E4M3(F8E4M3ToFloat(static_cast<uint8_t>(c))), c) << c;
  }
  EXPECT_EQ(FloatToF8E4M3(1.0625f), 0x38);  // halfway between 1 and 1.125: even (1)
  EXPECT_EQ(FloatToF8E4M3(1.1875f), 0x3a);  // halfway between 1.125 and 1.25: even (1.25)
  EXPECT_EQ(FloatToF8E4M3(1.07f), 0x39);
  EXPECT_EQ(FloatToF8E4M3(0x1p-10f), 0x00);   // half the smallest subnormal: even (0)
  EXPECT_EQ(FloatToF8E4M3(0x1.8p-9f), 0x02);  // 1.5 subnormal units: even (2)
  EXPECT_EQ(FloatToF8E4M3(1e6f), 0x7e);
  EXPECT_EQ(FloatToF8E4M3(-1e6f), 0xfe);
  EXPECT_EQ(FloatToF8E4M3(-0.0f), 0x80);
  EXPECT_TRUE(std::isnan(F8E4M3ToFloat(FloatToF8E4M3(NAN))));
}

TEST(Fp8Decode, ElemTypesParse) {
  for (const char* name : {"F8_E4M3", "F8_E5M2", "F8_E8M0", "U16", "U32", "U64"}) {
    absl::StatusOr<ElemType> t = ParseElemType(name);
    ASSERT_THAT(t, IsOk()) << name;
    EXPECT_EQ(ElemTypeName(*t), name);
    EXPECT_FALSE(IsQuantizableFloat(*t)) << name;
  }
  EXPECT_EQ(ElemSize(ElemType::kF8E4M3), 1);
  EXPECT_EQ(ElemSize(ElemType::kU64), 8);
  EXPECT_TRUE(IsFp8Weight(ElemType::kF8E5M2));
  EXPECT_FALSE(IsFp8Weight(ElemType::kF8E8M0));
  EXPECT_THAT(ParseElemType("F8_E4M3FNUZ"), StatusIs(absl::StatusCode::kInvalidArgument));
}

absl::StatusOr<Fp8ScaleLayout> Recognize(std::vector<int64_t> w, std::vector<int64_t> s,
                                         ElemType sd = ElemType::kF32,
                                         std::optional<std::array<int64_t, 2>> block = {}) {
  return RecognizeFp8Scale("m.x.weight", ElemType::kF8E4M3, w, "m.x.weight_scale_inv", sd, s,
                           block);
}

TEST(Fp8Scale, RecognisesLayoutsInUse) {
  absl::StatusOr<Fp8ScaleLayout> l = Recognize({300, 200}, {3, 2});
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->description, "128x128 blocks");
  EXPECT_EQ(l->block_rows, 128);
  EXPECT_EQ(l->scale_cols, 2);

  for (std::vector<int64_t> s : {std::vector<int64_t>{}, {1}, {1, 1}}) {
    l = Recognize({300, 200}, s);
    ASSERT_THAT(l, IsOk());
    EXPECT_EQ(l->description, "per tensor");
  }
  for (std::vector<int64_t> s : {std::vector<int64_t>{300, 1}, {300}}) {
    l = Recognize({300, 200}, s);
    ASSERT_THAT(l, IsOk());
    EXPECT_EQ(l->description, "per output channel");
  }
  l = Recognize({300, 200}, {5, 4}, ElemType::kF32, std::array<int64_t, 2>{64, 64});
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->description, "64x64 blocks");
  l = Recognize({8, 96}, {8, 3}, ElemType::kF8E8M0);  // MX: 32 elements of a row per exponent
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->description, "1x32 blocks");
  // Stacked experts: a leading [E] on every layout, or one scale per expert.
  l = Recognize({4, 256, 130}, {4, 2, 2});
  ASSERT_THAT(l, IsOk());
  EXPECT_TRUE(l->per_batch);
  EXPECT_EQ(l->batch, 4);
  l = Recognize({4, 256, 130}, {4});
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->description, "per matrix");
  l = Recognize({4, 256, 130}, {4, 256, 1});
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->description, "per output channel");
}

TEST(Fp8Scale, UnknownLayoutsNameBothTensors) {
  const auto unknown = AllOf(HasSubstr("\"m.x.weight\""), HasSubstr("\"m.x.weight_scale_inv\""),
                             HasSubstr("unknown scale layout"), HasSubstr("[3, 2]"));
  EXPECT_THAT(Recognize({300, 200}, {2, 2}), StatusIs(absl::StatusCode::kInvalidArgument, unknown));
  EXPECT_THAT(Recognize({300, 200}, {3, 2, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, unknown));
  EXPECT_THAT(Recognize({300, 200}, {200, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, unknown));
  // A config block size that disagrees with the scale's shape.
  EXPECT_THAT(Recognize({300, 200}, {3, 2}, ElemType::kF32, std::array<int64_t, 2>{64, 64}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("64x64")));
  EXPECT_THAT(Recognize({300, 200}, {3, 2}, ElemType::kI32),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scale dtype")));
  EXPECT_THAT(Recognize({300}, {1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 2 dimensions")));
  EXPECT_THAT(RecognizeFp8Scale("w", ElemType::kBF16, {4, 4}, "s", ElemType::kF32, {1}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an F8_E4M3/F8_E5M2")));
}

std::vector<uint8_t> ScaleBytes(const std::vector<float>& v, ElemType t) {
  std::vector<uint8_t> out(v.size() * ElemSize(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == ElemType::kF32) {
      std::memcpy(&out[4 * i], &v[i], 4);
    } else if (t == ElemType::kBF16) {
      const uint16_t h = FloatToBf16(v[i]);
      std::memcpy(&out[2 * i], &h, 2);
    } else {  // E8M0: v is a power of two
      out[i] = static_cast<uint8_t>(std::ilogb(v[i]) + 127);
    }
  }
  return out;
}

// The definition, element by element: w[b, i, j] = table[code] * scale[b?, i / bh, j / bw].
std::vector<float> ReferenceDequant(const std::vector<uint8_t>& codes, const std::vector<double>& t,
                                    const std::vector<float>& scale, int64_t batch, int64_t rows,
                                    int64_t cols, int64_t bh, int64_t bw, bool per_batch) {
  const int64_t sr = (rows + bh - 1) / bh, sc = (cols + bw - 1) / bw;
  std::vector<float> out(codes.size());
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t k = (b * rows + i) * cols + j;
        const float s = scale[((per_batch ? b : 0) * sr + i / bh) * sc + j / bw];
        out[k] = static_cast<float>(t[codes[k]]) * s;
      }
    }
  }
  return out;
}

struct DequantCase {
  std::vector<int64_t> shape;
  std::vector<int64_t> scale_shape;
  ElemType weight = ElemType::kF8E4M3;
  ElemType scale = ElemType::kF32;
  int64_t bh, bw;  // the block the reference applies
};

TEST(Fp8Dequant, MatchesTheDefinitionWithPartialBlocks) {
  const std::vector<DequantCase> cases = {
      {{300, 200}, {3, 2}, ElemType::kF8E4M3, ElemType::kF32, 128, 128},
      {{129, 257}, {2, 3}, ElemType::kF8E5M2, ElemType::kF32, 128, 128},
      {{128, 128}, {1, 1}, ElemType::kF8E4M3, ElemType::kBF16, 128, 128},
      {{300, 200}, {300, 1}, ElemType::kF8E4M3, ElemType::kF32, 1, 200},
      {{300, 200}, {1}, ElemType::kF8E4M3, ElemType::kF32, 300, 200},
      {{3, 130, 260}, {3, 2, 3}, ElemType::kF8E4M3, ElemType::kF32, 128, 128},
      {{2, 70, 96}, {2, 70, 3}, ElemType::kF8E4M3, ElemType::kF8E8M0, 1, 32},
  };
  std::mt19937 rng(7);
  std::unique_ptr<Engine> one = *Engine::Create({.threads = 1});
  std::unique_ptr<Engine> two = *Engine::Create({.threads = 2});
  for (const DequantCase& c : cases) {
    SCOPED_TRACE(ShapeString(c.shape) + " scale " + ShapeString(c.scale_shape));
    int64_t n = 1, sn = 1;
    for (int64_t d : c.shape) n *= d;
    for (int64_t d : c.scale_shape) sn *= d;
    std::vector<uint8_t> codes(n);
    for (uint8_t& v : codes) {
      do {
        v = static_cast<uint8_t>(rng());
      } while (std::isnan(c.weight == ElemType::kF8E4M3 ? F8E4M3ToFloat(v) : F8E5M2ToFloat(v)) ||
               std::isinf(c.weight == ElemType::kF8E4M3 ? F8E4M3ToFloat(v) : F8E5M2ToFloat(v)));
    }
    std::vector<float> scale(sn);
    for (float& s : scale) {
      s = c.scale == ElemType::kF8E8M0 ? std::ldexp(1.0f, static_cast<int>(rng() % 20) - 10)
          : c.scale == ElemType::kBF16
              ? Bf16ToFloat(FloatToBf16(std::ldexp(1.0f + (rng() % 1000) / 999.0f, -9)))
              : std::ldexp(1.0f + (rng() % 100000) / 99999.0f, -9);
    }
    const std::vector<uint8_t> sbytes = ScaleBytes(scale, c.scale);
    absl::StatusOr<Fp8ScaleLayout> l =
        RecognizeFp8Scale("t.weight", c.weight, c.shape, "t.weight_scale", c.scale, c.scale_shape,
                          c.scale == ElemType::kF8E8M0 ? std::optional<std::array<int64_t, 2>>{}
                                                       : std::array<int64_t, 2>{128, 128});
    ASSERT_THAT(l, IsOk());
    const int64_t batch = c.shape.size() == 3 ? c.shape[0] : 1;
    const int64_t rows = c.shape[c.shape.size() - 2], cols = c.shape.back();
    const std::vector<float> want =
        ReferenceDequant(codes, c.weight == ElemType::kF8E4M3 ? E4M3Table() : E5M2Table(), scale,
                         batch, rows, cols, c.bh, c.bw, l->per_batch);
    for (const Engine* e : {one.get(), two.get()}) {
      absl::StatusOr<std::vector<float>> got =
          DequantizeFp8("t.weight", c.weight, codes, *l, sbytes, *e);
      ASSERT_THAT(got, IsOk());
      ASSERT_EQ(got->size(), want.size());
      for (size_t k = 0; k < want.size(); ++k) {
        ASSERT_EQ(Bits((*got)[k]), Bits(want[k])) << "element " << k;
      }
    }
  }
}

TEST(Fp8Dequant, ByteCountsMustMatch) {
  std::unique_ptr<Engine> e = *Engine::Create({.threads = 1});
  absl::StatusOr<Fp8ScaleLayout> l = Recognize({256, 256}, {2, 2});
  ASSERT_THAT(l, IsOk());
  const std::vector<uint8_t> codes(256 * 256), scale(16), short_scale(12);
  EXPECT_THAT(DequantizeFp8("m.x.weight", ElemType::kF8E4M3, codes, *l, scale, *e), IsOk());
  EXPECT_THAT(DequantizeFp8("m.x.weight", ElemType::kF8E4M3, codes, *l, short_scale, *e),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("m.x.weight"), HasSubstr("128x128 blocks"))));
  EXPECT_THAT(DequantizeFp8("m.x.weight", ElemType::kF8E4M3, absl::MakeConstSpan(codes).subspan(1),
                            *l, scale, *e),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------------------------------------
// Checkpoint level: pairing weights with scales, what is consumed, block sizes from config.json
// ---------------------------------------------------------------------------------------------

TEST(Fp8Source, PairsWeightsWithScalesAndConsumesRuntimeScales) {
  const std::vector<TensorSpec> tensors = {
      {"model.embed_tokens.weight", ElemType::kBF16, {1000, 256}},
      {"model.layers.0.mlp.experts.0.up_proj.weight", ElemType::kF8E4M3, {300, 256}},
      {"model.layers.0.mlp.experts.0.up_proj.weight_scale_inv", ElemType::kF32, {3, 2}},
      {"model.layers.0.self_attn.q_proj.weight", ElemType::kF8E4M3, {256, 256}},
      {"model.layers.0.self_attn.q_proj.weight_scale", ElemType::kF32, {}},
      {"model.layers.0.self_attn.q_proj.input_scale", ElemType::kF32, {}},
      {"model.layers.0.self_attn.k_scale", ElemType::kF32, {}},
      {"model.layers.0.mlp.gate.e_score_correction_bias", ElemType::kF32, {8}},
  };
  absl::StatusOr<Fp8SourcePlan> p = PlanFp8Sources(tensors, std::nullopt);
  ASSERT_THAT(p, IsOk());
  ASSERT_EQ(p->weights.size(), 2u);
  EXPECT_EQ(p->weights.at("model.layers.0.mlp.experts.0.up_proj.weight").description,
            "128x128 blocks");
  EXPECT_EQ(p->weights.at("model.layers.0.self_attn.q_proj.weight").description, "per tensor");
  EXPECT_THAT(p->consumed,
              ::testing::UnorderedElementsAre(
                  ::testing::Key("model.layers.0.mlp.experts.0.up_proj.weight_scale_inv"),
                  ::testing::Key("model.layers.0.self_attn.q_proj.weight_scale"),
                  ::testing::Key("model.layers.0.self_attn.q_proj.input_scale"),
                  ::testing::Key("model.layers.0.self_attn.k_scale")));
  EXPECT_THAT(p->consumed.at("model.layers.0.self_attn.q_proj.weight_scale"),
              HasSubstr("scale of FP8 tensor \"model.layers.0.self_attn.q_proj.weight\""));

  // Without FP8 weights nothing is consumed: an F32 checkpoint's k_scale is just a tensor.
  p = PlanFp8Sources({tensors[0], tensors[6]}, std::nullopt);
  ASSERT_THAT(p, IsOk());
  EXPECT_TRUE(p->empty());
  EXPECT_TRUE(p->consumed.empty());
}

TEST(Fp8Source, WeightWithoutScaleOrWithAnUnknownOneIsAnError) {
  EXPECT_THAT(
      PlanFp8Sources({{"a.weight", ElemType::kF8E4M3, {128, 128}},
                      {"b.weight_scale_inv", ElemType::kF32, {1, 1}}},
                     std::nullopt),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("FP8 tensor \"a.weight\""), HasSubstr("no scale tensor"),
                     HasSubstr("\"a.weight_scale_inv\""), HasSubstr("\"a.weight_scale\""))));
  EXPECT_THAT(PlanFp8Sources({{"a.weight", ElemType::kF8E5M2, {256, 256}},
                              {"a.weight_scale_inv", ElemType::kF32, {3, 3}}},
                             std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"a.weight\""), HasSubstr("unknown scale layout"))));
}

TEST(Fp8Source, BlockSizeFromConfig) {
  using Block = std::optional<std::array<int64_t, 2>>;
  auto block = [](const char* json) {
    return Fp8BlockFromConfig(nlohmann::ordered_json::parse(json));
  };
  EXPECT_EQ(*block(R"({"model_type": "llama"})"), Block{});
  EXPECT_EQ(*block(R"({"quantization_config": {"quant_method": "fp8", "fmt": "e4m3",
                       "weight_block_size": [128, 64]}})"),
            (Block{{128, 64}}));
  EXPECT_EQ(*block(R"({"quantization_config": {"quant_method": "fp8"}})"), Block{});
  EXPECT_EQ(*block(R"({"quantization_config": {"quant_method": "compressed-tensors",
                       "config_groups": {"group_0": {"weights": {"type": "float", "num_bits": 8,
                       "strategy": "block", "block_structure": [64, 64]}}}}})"),
            (Block{{64, 64}}));
  EXPECT_THAT(block(R"({"quantization_config": {"weight_block_size": [128]}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight_block_size")));
  EXPECT_THAT(block(R"({"quantization_config": {"weight_block_size": [0, 128]}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[0,128]")));
  EXPECT_THAT(block(R"({"quantization_config": {"config_groups": {
                       "a": {"weights": {"block_structure": [64, 64]}},
                       "b": {"weights": {"block_structure": [128, 128]}}}}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("differs")));
}

}  // namespace
}  // namespace rtnq
